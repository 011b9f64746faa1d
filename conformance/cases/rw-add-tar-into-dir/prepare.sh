mkdir -p src/bin
echo new > src/same
printf '#!/bin/sh\n' > src/bin/tool
chmod 755 src/bin/tool
tar --owner=0 --group=0 --numeric-owner -czf pkg.tar.gz -C src .
rm -rf src
