FROM basic:latest
RUN test -f /onbuild.txt
