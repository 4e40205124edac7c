//! The list as a work queue (staff default, counts, "last reply by", unread
//! markers, remembered filters), what the portal says after each action,
//! Close behind a confirmation, status changes in the thread, and times in
//! the viewer's time zone.

use super::*;

/// The `<tr>` of the list that links to ticket `id` (panics when there is none).
fn row(body: &str, id: TicketId) -> &str {
    let link = format!("<a href=\"/t/{id}\">");
    let at = body.find(&link).unwrap_or_else(|| panic!("no row for #{id} in {body}"));
    let start = body[..at].rfind("<tr").expect("a row");
    let end = at + body[at..].find("</tr>").expect("the row's end");
    &body[start..end]
}

fn unread(body: &str, id: TicketId) -> bool {
    let r = row(body, id);
    let marked = r.starts_with("<tr class=\"unread\"");
    assert_eq!(marked, r.contains("(new activity)"), "bold and said: {r}");
    marked
}

/// The text of the page's status region, if it has one.
fn notice(body: &str) -> Option<String> {
    let at = body.find("role=\"status\" id=\"notice\">")? + "role=\"status\" id=\"notice\">".len();
    Some(body[at..].split('<').next()?.to_string())
}

impl World {
    /// Opens a ticket for Acme as Jane at `at`, with the given status.
    fn open_at(&self, subject: &str, at: i64, status: Status) -> TicketId {
        self.pipeline
            .db()
            .write(|tx| {
                let jane = users::by_id(tx, self.member)?;
                let p = actions::open(
                    tx,
                    &self.pipeline.env(at),
                    jane.team_id.unwrap(),
                    subject,
                    "web",
                    &post(&jane, "x"),
                )?;
                tickets::set_status(tx, p.ticket.id, status, at)?;
                Ok::<_, StoreError>(p.ticket.id)
            })
            .unwrap()
    }

    async fn send_reply(&self, who: &Client, t: TicketId, body: &str, action: &str) -> Resp {
        self.multipart(
            &format!("/t/{t}/reply"),
            Some(who),
            &[("csrf", &who.csrf), ("body", body), ("action", action)],
            &[],
        )
        .await
    }
}

#[tokio::test]
async fn staff_land_on_the_waiting_queue_oldest_first_and_customers_on_everything_newest_first() {
    let w = world();
    let newer = w.open_at("Newer waiting", 5_000, Status::WaitingForSupport);
    let older = w.open_at("Older waiting", 3_000, Status::WaitingForSupport);
    let closed = w.open_at("Long closed", 4_000, Status::Closed);
    let (jane, agent) = (w.session(w.member), w.session(w.staff));
    let pos = |body: &str, s: &str| body.find(s).unwrap_or(usize::MAX);

    let queue = w.get("/", Some(&agent)).await.body;
    assert!(pos(&queue, "Older waiting") < pos(&queue, "Newer waiting"), "oldest update first");
    assert!(!queue.contains("Long closed") && !queue.contains("Printer on fire"), "only waiting for support");
    assert!(queue.contains("<span id=\"total\">2 tickets match</span>"), "{queue}");
    assert!(queue.contains("<option value=\"waiting_for_support\" selected>"));
    assert!(queue.contains("<option value=\"oldest\" selected>"));
    let everything = w.get("/?status=any&sort=updated", Some(&agent)).await.body;
    assert!(everything.contains("<span id=\"total\">4 tickets</span>"), "any status is no filter");
    assert!(pos(&everything, "Newer waiting") < pos(&everything, "Long closed"));

    let mine = w.get("/", Some(&jane)).await.body;
    assert!(mine.contains("<span id=\"total\">4 tickets</span>"), "{mine}");
    assert!(pos(&mine, "Newer waiting") < pos(&mine, "Long closed"), "newest update first");
    assert!(pos(&mine, "Long closed") < pos(&mine, "Older waiting") && mine.contains("Printer on fire"));
    assert!(w.get("/?status=closed", Some(&jane)).await.body.contains("<span id=\"total\">1 ticket matches</span>"));
    for id in [newer, older, closed] {
        row(&mine, id);
    }
}

#[tokio::test]
async fn the_list_says_who_replied_last_and_how_old_a_ticket_is() {
    let w = world();
    let (jane, agent) = (w.session(w.member), w.session(w.staff));
    let list = w.get("/", Some(&jane)).await.body;
    let r = row(&list, w.ticket);
    assert!(r.contains("<td data-label=\"Last reply by\">Agent <span class=\"role\">(staff)</span></td>"), "{r}");
    assert!(r.contains("title=\"Opened 1 Jan 1970 00:16 +00:00 UTC\">"), "{r}");
    assert!(r.contains(" wk</time>"), "opened at 1,000 s: weeks ago: {r}");
    w.send_reply(&jane, w.ticket, "Still burning", "send").await;
    let list = w.get("/", Some(&agent)).await.body;
    assert!(
        row(&list, w.ticket)
            .contains("<td data-label=\"Last reply by\">Jane <span class=\"role\">(customer)</span></td>")
    );
}

#[tokio::test]
async fn unread_markers_follow_other_peoples_activity_not_ones_own() {
    let w = world();
    let t = w.ticket;
    let (jane, agent, boss) = (w.session(w.member), w.session(w.staff), w.session(w.admin));
    let staff_list = "/?status=any";
    assert!(unread(&w.get(staff_list, Some(&agent)).await.body, t), "never opened: Jane's post is new");
    assert!(unread(&w.get("/", Some(&jane)).await.body, t), "the agent's answer is new to Jane");
    w.get(&format!("/t/{t}"), Some(&agent)).await;
    assert!(!unread(&w.get(staff_list, Some(&agent)).await.body, t), "opened: seen");

    w.get(&format!("/t/{t}"), Some(&jane)).await;
    w.send_reply(&jane, t, "It is still on fire", "send").await;
    assert!(unread(&w.get(staff_list, Some(&agent)).await.body, t), "Jane posted");
    assert!(!unread(&w.get("/", Some(&jane)).await.body, t), "Jane's own post");
    assert!(unread(&w.get("/", Some(&boss)).await.body, t), "per user: the admin has not looked");
    w.get(&format!("/t/{t}"), Some(&agent)).await;
    assert!(!unread(&w.get(staff_list, Some(&agent)).await.body, t), "viewed again");

    // The agent's own post leaves the ticket read for the agent, even without viewing it.
    w.pipeline
        .db()
        .write(|tx| {
            let agent = users::by_id(tx, w.staff)?;
            actions::reply(tx, &w.pipeline.env(ticketgate::clock::now()), w.ticket_row(t), &post(&agent, "Try water"))
        })
        .unwrap();
    assert!(!unread(&w.get(staff_list, Some(&agent)).await.body, t), "one's own post");
    assert!(unread(&w.get("/", Some(&boss)).await.body, t));

    // Closing without text is activity too.
    w.get(&format!("/t/{t}"), Some(&jane)).await;
    w.send_reply(&agent, t, "", "close").await;
    assert!(unread(&w.get("/", Some(&jane)).await.body, t), "closed by the agent");
    assert!(!unread(&w.get(staff_list, Some(&agent)).await.body, t));
}

#[tokio::test]
async fn list_filters_are_remembered_for_the_menu_link_until_reset() {
    let w = world();
    let closed = w.open_at("Long closed", 4_000, Status::Closed);
    let (jane, boss) = (w.session(w.member), w.session(w.admin));
    let r = w.get("/?status=closed&sort=subject", Some(&jane)).await;
    let set = r.cookies().into_iter().find(|c| c.starts_with("tg_list=")).expect("the filters are kept");
    assert!(set.contains("HttpOnly") && set.contains("Path=/"), "{set}");
    let kept = set.split(';').next().unwrap().to_string();
    let with = |c: &Client| Client { cookie: format!("{}; {kept}", c.cookie), csrf: c.csrf.clone() };

    // "Tickets" in the menu is plain "/": the kept filters apply.
    let back = w.get("/", Some(&with(&jane))).await.body;
    assert!(back.contains("<option value=\"closed\" selected>") && back.contains("1 ticket matches"), "{back}");
    assert!(!back.contains("Printer on fire"));
    row(&back, closed);
    assert!(back.contains("<a href=\"/?reset\" id=\"reset\">Reset filters</a>"));
    // Another user of the same browser starts from their own default.
    let other = w.get("/", Some(&with(&boss))).await.body;
    assert!(other.contains("Printer on fire") && !other.contains("id=\"reset\""));

    let reset = w.get("/?reset", Some(&with(&jane))).await;
    let cleared = reset.cookies().into_iter().find(|c| c.starts_with("tg_list=")).expect("cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(reset.body.contains("Printer on fire") && reset.body.contains("2 tickets</span>"));
    assert!(!reset.body.contains("id=\"reset\""), "nothing to reset");
}

#[tokio::test]
async fn every_action_says_what_it_did_from_a_fixed_table() {
    let w = world();
    let boss = w.session(w.admin);
    let r = w.multipart("/new", Some(&boss), &[("csrf", &boss.csrf), ("subject", "VPN"), ("body", "down")], &[]).await;
    let created = r.location().to_string();
    let id = created.trim_start_matches("/t/").trim_end_matches("?done=created");
    assert_eq!(created, format!("/t/{id}?done=created"));
    let (w, boss) = (&w, &boss);
    let said = |path: String| async move { notice(&w.get(&path, Some(boss)).await.body) };
    assert_eq!(said(created.clone()).await.as_deref(), Some(format!("Ticket #{id} created.").as_str()));
    let t = w.ticket;
    let steps: [(&str, &str, &str); 4] = [
        ("Here is more", "send", "Your reply was sent."),
        ("", "close", "The ticket is closed."),
        ("Back again", "send", "Your reply was sent and the ticket reopened."),
        ("Fixed, thanks", "close", "Your reply was sent and the ticket closed."),
    ];
    for (body, action, text) in steps {
        let r = w.send_reply(boss, t, body, action).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let path = r.location().split('#').next().unwrap().to_string();
        assert_eq!(said(path).await.as_deref(), Some(text), "{body:?} {action}");
    }
    let r = w.form(&format!("/t/{t}/reference"), Some(boss), &[("csrf", &boss.csrf), ("reference", "PO-1")]).await;
    assert_eq!(said(r.location().to_string()).await.as_deref(), Some("The internal reference was saved."));
    // Nothing from the URL is echoed; a plain view says nothing.
    let forged = w.get(&format!("/t/{t}?done=%3Cb%3EYou+won%3C%2Fb%3E"), Some(boss)).await.body;
    assert!(notice(&forged).is_none() && !forged.contains("You won"));
    assert!(notice(&w.get(&format!("/t/{t}"), Some(boss)).await.body).is_none());
}

#[tokio::test]
async fn close_asks_first_is_not_offered_when_closed_and_the_thread_says_who_did_it() {
    let w = world();
    let t = w.ticket;
    let jane = w.session(w.member);
    let open = w.get(&format!("/t/{t}"), Some(&jane)).await.body;
    let confirm = open.split("<details class=\"confirm\" id=\"close-confirm\">").nth(1).expect("Close asks first");
    let confirm = confirm.split("</details>").next().unwrap();
    assert!(confirm.contains("<summary>") && confirm.contains("name=\"action\" value=\"close\" id=\"close\""));
    assert_eq!(open.matches("value=\"close\"").count(), 1, "the only Close is the confirming one");

    w.send_reply(&jane, t, "", "close").await;
    let closed = w.get(&format!("/t/{t}"), Some(&jane)).await.body;
    assert!(!closed.contains("value=\"close\"") && !closed.contains("close-confirm"), "nothing to close");
    assert!(closed.contains("Send reopens it."));
    assert!(closed.contains("<li class=\"change\">Closed by Jane, <time datetime="), "{closed}");

    w.send_reply(&jane, t, "It is back", "send").await;
    let thread = w.get(&format!("/t/{t}"), Some(&jane)).await.body;
    let (closed_at, back_at, reopened_at) = (
        thread.find("Closed by Jane").unwrap(),
        thread.find("It is back").unwrap(),
        thread.find("Reopened by Jane").unwrap(),
    );
    assert!(closed_at < back_at && back_at < reopened_at, "in the order it happened");
    assert!(thread.contains("value=\"close\""), "open again: Close is offered");
}

#[tokio::test]
async fn times_are_shown_in_the_viewers_zone_relative_with_the_exact_time_on_hover() {
    let w = world_with(|c| c.web.time_zone = "Europe/Berlin".into());
    let t = w.ticket;
    let (jane, agent) = (w.session(w.member), w.session(w.staff));
    // Created at 1,000 s: 00:16:40 UTC, 01:16 in Berlin, 09:16 in Tokyo.
    let page = w.get(&format!("/t/{t}"), Some(&jane)).await.body;
    assert!(
        page.contains("<time datetime=\"1970-01-01T01:16:40+01:00\" title=\"1 Jan 1970 01:16 +01:00 Europe/Berlin\">1 Jan 1970</time>"),
        "the configured default: {page}"
    );

    let account = w.get("/account", Some(&jane)).await.body;
    assert!(account.contains("<option value=\"\" selected>The portal's default (Europe/Berlin)</option>"));
    let r = w.form("/account/time-zone", Some(&jane), &[("csrf", &jane.csrf), ("time_zone", "Asia/Tokyo")]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/account?done=time-zone"));
    let account = w.get(r.location(), Some(&jane)).await.body;
    assert!(account.contains("Your time zone was saved.") && account.contains("<option selected>Asia/Tokyo</option>"));

    let page = w.get(&format!("/t/{t}"), Some(&jane)).await.body;
    assert!(page.contains("datetime=\"1970-01-01T09:16:40+09:00\" title=\"1 Jan 1970 09:16 +09:00 Asia/Tokyo\""));
    assert!(!page.contains("+01:00"), "every time on the page");
    let list = w.get("/", Some(&jane)).await.body;
    assert!(list.contains("+09:00 Asia/Tokyo") && !list.contains("+01:00"));
    assert!(w.get(&format!("/t/{t}"), Some(&agent)).await.body.contains("+01:00 Europe/Berlin"), "per user");

    // A fresh post reads relative.
    w.send_reply(&agent, t, "Just now", "send").await;
    assert!(w.get(&format!("/t/{t}"), Some(&jane)).await.body.contains("\">just now</time>"));

    let r = w.form("/account/time-zone", Some(&jane), &[("csrf", &jane.csrf), ("time_zone", "Mars/Olympus")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = w.form("/account/time-zone", Some(&jane), &[("csrf", "forged"), ("time_zone", "UTC")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w.form("/account/time-zone", Some(&jane), &[("csrf", &jane.csrf), ("time_zone", "")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(w.get(&format!("/t/{t}"), Some(&jane)).await.body.contains("+01:00 Europe/Berlin"), "back to the default");
}

#[tokio::test]
async fn customers_get_a_create_button_and_the_other_contacts_beside_the_list() {
    let w = world();
    let (jane, agent) = (w.session(w.member), w.session(w.staff));
    let list = w.get("/", Some(&jane)).await.body;
    assert!(list.contains("<a class=\"button\" href=\"/new\" id=\"create\">Create a ticket</a>"));
    assert!(list.contains("mailto:sales@example.test") && list.contains("mailto:billing@example.test"));
    let queue = w.get("/", Some(&agent)).await.body;
    assert!(!queue.contains("id=\"create\"") && !queue.contains("sales@example.test"));
    assert_eq!(w.get("/contact", None).await.status, StatusCode::OK, "the contact page stays");
}
