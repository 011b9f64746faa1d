mkdir -p r/sub
echo x > r/sub/x
chmod 700 r
chmod 750 r/sub
tar --owner=0 --group=0 --numeric-owner -cf root.tar -C r .
rm -rf r
mkdir -p h
echo data > h/a
ln h/a h/b
tar --owner=0 --group=0 --numeric-owner -cf hl.tar -C h .
rm -rf h
