FROM busybox:latest
RUN echo line-one && echo line-two && exit 3
