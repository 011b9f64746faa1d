printf "just text\n" | gzip -n > plain.gz
printf "not a tar\n" > notar.tar
