chmod 755 exec
chmod 400 ro
chmod 700 d
chmod 1777 sticky
chmod 4755 exec
mkdir empty
chmod 750 empty
