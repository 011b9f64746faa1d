mkdir -p src/d
echo x > src/d/x
chmod 700 src/d
tar --mtime=@0 --sort=name --owner=1001 --group=1002 --numeric-owner -cf pkg.tar -C src .
tar --mtime=@0 --sort=name --owner=1001 --group=1002 --numeric-owner -czf pkg.tar.gz -C src .
echo plain > plain.txt
rm -rf src
