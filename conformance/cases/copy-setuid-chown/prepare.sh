chmod 4755 suid
chmod 2755 sgid
