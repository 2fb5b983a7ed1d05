//! Listening, TLS and graceful shutdown. Each accepted connection is served
//! by hyper's HTTP/1.1 implementation (optionally inside rustls); on SIGTERM
//! or SIGINT the listener closes, open requests get the configured time to
//! finish, and then the process exits.

use crate::catalog::Catalog;
use crate::config::{Config, TlsConfig};
use crate::conn::Idle;
use crate::metrics::Metrics;
use crate::routes::{handle, App};
use crate::store::s3::S3Store;
use crate::store::{LocalDisk, Storage};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Why [`run`] could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory or bucket could not be opened or its records not
    /// loaded.
    #[error("cannot open storage {path}: {source}")]
    Data {
        /// The configured `data_dir`, or the S3 endpoint and bucket.
        path: String,
        /// What opening or loading it failed with.
        source: std::io::Error,
    },
    /// The listening socket could not be bound (address in use, no
    /// permission for a low port, …).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured `listen` address.
        addr: String,
        /// What `bind` failed with.
        source: std::io::Error,
    },
    /// The certificate or key could not be read or used; the message names
    /// the file where one is at fault.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Any other I/O failure while starting (e.g. reading back the bound
    /// address).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

fn tls_acceptor(t: &TlsConfig) -> Result<TlsAcceptor, ServerError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ServerError::Tls(format!("{}: {e}", p.display())))
    };
    let cert_pem = read(&t.cert)?;
    let key_pem = read(&t.key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: {e}", t.cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{}: no certificate",
            t.cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ServerError::Tls(format!("{}: {e}", t.key.display())))?
        .ok_or_else(|| ServerError::Tls(format!("{}: no private key", t.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Raises the soft open-file limit to the hard one and returns how many
/// connections fit in it: each download holds a socket and a file, and a
/// few descriptors are kept for storage work and logging.
fn connection_cap(wanted: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    let have = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return wanted;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    };
    let fits = usize::try_from(have.saturating_sub(64) / 2).unwrap_or(usize::MAX);
    let cap = wanted.min(fits.max(1));
    if cap < wanted {
        tracing::warn!(
            wanted,
            cap,
            nofile = have,
            "max_connections lowered to what the open-file limit holds"
        );
    }
    cap
}

/// Runs the server until a shutdown signal. Prints `listening on ADDR` on
/// stdout once the socket is bound (tests read the port from it).
pub async fn run(cfg: Config) -> Result<(), ServerError> {
    let (storage, place): (Arc<dyn Storage>, String) = match (cfg.s3_settings(), &cfg.data_dir) {
        (Some(s3), _) => {
            let place = format!("{}/{}", s3.endpoint, s3.bucket);
            let store = S3Store::new(&s3).map_err(|source| ServerError::Data {
                path: place.clone(),
                source,
            })?;
            (Arc::new(store), place)
        }
        (None, Some(dir)) => {
            let place = dir.display().to_string();
            let disk = LocalDisk::open(dir).map_err(|source| ServerError::Data {
                path: place.clone(),
                source,
            })?;
            (Arc::new(disk), place)
        }
        (None, None) => {
            return Err(ServerError::Data {
                path: String::new(),
                source: std::io::Error::other("no data_dir and no [storage] backend"),
            })
        }
    };
    let catalog = tokio::task::spawn_blocking(move || Catalog::load(storage))
        .await
        .map_err(|e| ServerError::Io(std::io::Error::other(e)))?
        .map_err(|source| ServerError::Data {
            path: place.clone(),
            source,
        })?;
    let tls = cfg.tls.as_ref().map(tls_acceptor).transpose()?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: cfg.listen.to_string(),
            source,
        })?;
    let local = listener.local_addr()?;
    let max_conns = connection_cap(cfg.max_connections);
    let slots = Arc::new(Semaphore::new(max_conns));
    let idle = Duration::from_secs(cfg.connection_idle_timeout_secs);
    let shutdown_timeout = Duration::from_secs(cfg.shutdown_timeout_secs);
    let app = Arc::new(App {
        scheme: if tls.is_some() { "https" } else { "http" },
        cfg,
        catalog,
        metrics: Arc::new(Metrics::default()),
    });
    if let Some(every) = app.catalog.storage.refresh_interval() {
        // Shared store: pick up what other replicas publish.
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = app.catalog.refresh().await {
                    tracing::warn!(error = %e.message, "catalog refresh failed");
                }
            }
        });
    }
    tracing::info!(addr = %local, tls = tls.is_some(), "listening");
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {local}");
        let _ = out.flush();
    }
    let graceful = GracefulShutdown::new();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        // A slot first, then the connection: at the cap, new clients wait in
        // the kernel's accept queue instead of costing us a descriptor.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = {
            let mut b = http1::Builder::new();
            // Slow-header clients (slowloris) are cut off.
            b.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .max_buf_size(256 * 1024);
            b
        };
        let service = service_fn(move |req| handle(app.clone(), req));
        match &tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(Idle::new(stream, idle)), service);
                let fut = graceful.watch(conn);
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = fut.await {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let _slot = slot;
                    let tls_stream = match tokio::time::timeout(
                        Duration::from_secs(30),
                        acceptor.accept(Idle::new(stream, idle)),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down; waiting for open requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(shutdown_timeout) => tracing::warn!("shutdown timeout; closing remaining connections"),
    }
    Ok(())
}
