//! `ticketgate serve`: makes the first login on an empty database (before
//! the runtime starts: hashing blocks), then runs the mail sources, the
//! outbox worker, the web portal and the metrics endpoint side by side
//! until SIGTERM or Ctrl-C. Shutdown is cooperative: each task
//! finishes the message in hand, so sources stay consistent.

use anyhow::Context;
use tokio::sync::watch;

use crate::app::App;
use crate::lifecycle::Role;
use crate::store::users;

pub async fn run(app: App) -> anyhow::Result<()> {
    let config = app.shared_config();
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    if !config.maildir.path.as_os_str().is_empty() {
        tasks.spawn(crate::inbound::maildir::run(app.clone(), shutdown.clone()));
    }
    for mailbox in &config.imap {
        tasks.spawn(crate::inbound::imap::run(app.clone(), mailbox.clone(), shutdown.clone()));
    }
    tasks.spawn(crate::outbound::run(app.db().clone(), config.clone(), app.keys().clone(), shutdown.clone()));
    if !config.web.listen.is_empty() {
        let listener = listen("web.listen", &config.web.listen).await?;
        tasks.spawn(crate::web::run(app.clone(), listener, shutdown.clone()));
    }
    if !config.metrics.listen.is_empty() {
        let listener = listen("metrics.listen", &config.metrics.listen).await?;
        tasks.spawn(crate::metrics::run(app.db().clone(), listener, shutdown.clone()));
    }

    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing the work in hand");
        let _ = stop.send(true);
    });

    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(e).context("a serve task panicked"),
        }
    }
    Ok(())
}

/// Binds `address`; a host name is resolved now and the first of its
/// addresses that can be bound is used.
async fn listen(key: &str, address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await.with_context(|| format!("{key} = {address:?}: cannot listen there"))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
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

/// On an empty database, creates a staff login (`admin@<support domain>`)
/// with a random password and prints it once: the first person to run the
/// gateway needs a way into the portal to set up teams and users.
pub fn first_login(app: &App) -> anyhow::Result<()> {
    let config = app.config();
    let email = format!("admin@{}", crate::address::domain(&config.support.address));
    let password = crate::password::generate();
    let created = app.db().write(|tx| {
        let empty: bool = tx.query_row("SELECT NOT EXISTS(SELECT 1 FROM users)", [], |r| r.get(0))?;
        if empty {
            let hash = crate::password::hash(&password);
            let new = users::NewUser {
                email: &email,
                name: "Administrator",
                role: Role::Staff,
                team_id: None,
                password_hash: Some(&hash),
            };
            users::create_user(tx, &new, crate::clock::now())?;
        }
        Ok::<_, crate::store::StoreError>(empty)
    })?;
    if created {
        let url = format!("{}/login", config.support.public_url.trim_end_matches('/'));
        println!("First login (shown once): {email} / {password}  at {url}");
    }
    Ok(())
}
