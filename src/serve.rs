//! `ticketgate serve`: opens the store, makes the first login on an empty
//! database, and runs the mail sources, the outbox worker and the web portal
//! side by side until SIGTERM or Ctrl-C. Shutdown is cooperative: each task
//! finishes the message in hand, so sources stay consistent.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::Config;
use crate::lifecycle::Role;
use crate::pipeline::Pipeline;
use crate::store::users;

pub async fn run(config: Arc<Config>) -> anyhow::Result<()> {
    let pipeline = crate::cli::pipeline(config.clone())?;
    first_login(&pipeline)?;
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    if !config.maildir.path.as_os_str().is_empty() {
        tasks.spawn(crate::inbound::maildir::run(pipeline.clone(), shutdown.clone()));
    }
    for mailbox in &config.imap {
        tasks.spawn(crate::inbound::imap::run(pipeline.clone(), mailbox.clone(), shutdown.clone()));
    }
    tasks.spawn(crate::outbound::run(pipeline.db().clone(), config.clone(), pipeline.keys().clone(), shutdown.clone()));
    if !config.web.listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&config.web.listen)
            .await
            .with_context(|| format!("web.listen = {:?}: cannot listen there", config.web.listen))?;
        tasks.spawn(crate::web::run(pipeline.clone(), listener, shutdown.clone()));
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
fn first_login(pipeline: &Pipeline) -> anyhow::Result<()> {
    let config = pipeline.config();
    let email = format!("admin@{}", crate::address::domain(&config.support.address));
    let password = crate::password::generate();
    let created = pipeline.db().write(|tx| {
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
