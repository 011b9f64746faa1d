# escape=`
# syntax=docker/dockerfile:1

# The backtick escape of Windows images with a Linux nginx build in the style of the
# official nginx image (source build, dynamic module, slim runtime).

ARG NGINX_VERSION=1.27.0
ARG PKG_RELEASE=1~bookworm

FROM debian:bookworm-slim AS source
ARG NGINX_VERSION
ADD --checksum=sha256:b7230e3cf87eaa2d4b0bc56aadc920a960c7873b9991a1b66ffcc08fc650129c `
    https://nginx.org/download/nginx-${NGINX_VERSION}.tar.gz /usr/src/
ADD --keep-git-dir=true https://github.com/openresty/headers-more-nginx-module.git#v0.37 /usr/src/headers-more
RUN set -x `
    && cd /usr/src `
    && tar -xzf nginx-${NGINX_VERSION}.tar.gz `
    && rm nginx-${NGINX_VERSION}.tar.gz

FROM source AS build
RUN --mount=type=cache,id=apt-lists,target=/var/lib/apt/lists,sharing=private `
    --mount=type=tmpfs,target=/tmp,size=256m `
    apt-get update `
    && apt-get install --no-install-recommends --no-install-suggests -y `
        gcc make libc-dev libpcre2-dev zlib1g-dev libssl-dev `
    && cd /usr/src/nginx-${NGINX_VERSION} `
    && ./configure `
        --prefix=/etc/nginx `
        --sbin-path=/usr/sbin/nginx `
        --with-http_ssl_module `
        --with-http_v2_module `
        --add-dynamic-module=/usr/src/headers-more `
    && make -j"$(nproc)" `
    && make install DESTDIR=/out

FROM debian:bookworm-slim
LABEL maintainer="NGINX Docker Maintainers <docker-maint@nginx.com>"
ENV NGINX_VERSION=${NGINX_VERSION} PKG_RELEASE=${PKG_RELEASE}
COPY --from=build --link /out/ /
RUN --mount=type=ssh,required=true `
    --mount=type=secret,id=signing_key,env=SIGNING_KEY `
    --security=sandbox `
    groupadd --system --gid 101 nginx `
    && useradd --system --gid nginx --no-create-home --home /nonexistent `
        --comment "nginx user" --shell /bin/false --uid 101 nginx `
    && ln -sf /dev/stdout /var/log/nginx/access.log `
    && ln -sf /dev/stderr /var/log/nginx/error.log
COPY <<-"CONF" /etc/nginx/conf.d/default.conf
	server {
	    listen 80;
	    location / { root /usr/share/nginx/html; index index.html; }
	}
	CONF
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN nginx -t 2>&1 | grep -q "syntax is ok"
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
