FROM busybox:latest
RUN echo before
COPY missing.txt /x
