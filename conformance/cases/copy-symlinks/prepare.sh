ln -s target link
ln -s d dirlink
ln -s /etc/passwd abs
ln -s missing dangling
