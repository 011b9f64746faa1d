mkdir -p src/sub
echo one > src/one
echo two > src/sub/two
ln -s one src/lnk
chmod 600 src/one
tar --owner=1001 --group=1002 --numeric-owner -cf archive.tar -C src .
tar --owner=0 --group=0 --numeric-owner -czf archive.tar.gz -C src .
tar -cjf archive.tar.bz2 -C src one
tar -cJf archive.tar.xz -C src sub
rm -rf src
