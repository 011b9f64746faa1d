//! Moving images in and out of the store: `save`/`load` (OCI layout and docker-archive tars),
//! `import` (a rootfs tar or directory becomes a one-layer image) and `export` (flattened rootfs).
