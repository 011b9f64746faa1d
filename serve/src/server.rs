//! Running `hoist serve`: binds the listener, serves the HTTP routes and runs the build workers until
//! a shutdown signal, then stops both gracefully.
//!
//! Owns: the process's runtime and signal handling. Must not touch: routes ([`crate::http`]) or
//! build execution ([`crate::service`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::clock::timestamp;
use crate::config::Config;
use crate::runner::BuildRunner;
use crate::service::Service;

/// Runs the service on `listener` until `shutdown` resolves: HTTP intake and status, plus workers.
pub async fn run(
    service: Arc<Service>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(service.clone().work({
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }));
    let app = crate::http::router(service);
    let mut rx2 = rx;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = tx.send(true);
            let _ = rx2.wait_for(|v| *v).await;
        })
        .await
        .context("HTTP server")?;
    let _ = workers.await;
    Ok(())
}

/// `hoist serve`: opens the state, binds `config.listen`, and serves until SIGINT or SIGTERM. Builds
/// running at the stop stay `running` in the queue and are requeued on the next start.
pub fn serve_until_signal(config: Config, runner: Arc<dyn BuildRunner>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let listen = config.listen;
        let service = Service::open(config, runner)?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        eprintln!(
            "{} hoist serve listening on http://{}",
            timestamp(),
            listener.local_addr()?
        );
        run(service, listener, signal()).await
    });
    eprintln!("{} hoist serve stopped", timestamp());
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
