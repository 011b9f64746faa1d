mkdir -p dir/in
echo real > dir/in/real
ln -s dir/in/real link-to-file
ln -s dir link-to-dir
ln -s ../../outside dir/in/escape
ln -s in/real dir/rel
