//! HTTP routes: webhook intake and the status API and page.
//!
//! - `POST /hooks/<repo>`: any supported webhook for a configured repository (`/hooks` alone routes by
//!   the payload's repository full name). 202 with the queued build ids, 200 for pings and pushes that
//!   match no rule, 401 for a bad signature (nothing queued), 404 for an unknown repository, 409 for a
//!   push whose delivery id was seen before (a replay: nothing queued; the id is kept in the queue
//!   database, see [`crate::queue::DELIVERY_TTL_MS`]).
//! - `GET /api/builds[?limit=N]`, `GET /api/builds/<id>` (with its log), `GET /api/builds/<id>/log`
//!   (`?offset=N`, plain text), `GET /api/builds/<id>/events` (server-sent log chunks and states).
//! - `GET /api/workers`: the workers sharing the queue (name, labels, load, capacity, last heartbeat);
//!   empty with the embedded SQLite queue.
//! - `GET /`: the status page.
//!
//! A `--role worker` process answers 503 to webhooks: they go to a `web` or `all` process.
//!
//! With `status_token` configured, `/` and `/api/*` answer 401 unless the request carries
//! `Authorization: Bearer <token>` or the page's cookie; `GET /?token=<token>` sets that cookie and
//! redirects to the page (so the token leaves the address bar). Tokens are compared in constant time.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::service::Service;
use crate::webhook::{self, Event, Rejection};

type Svc = Arc<Service>;

/// The service's routes.
pub fn router(service: Svc) -> Router {
    let status = Router::new()
        .route("/", get(page))
        .route("/api/builds", get(list_builds))
        .route("/api/builds/{id}", get(get_build))
        .route("/api/builds/{id}/log", get(get_log))
        .route("/api/builds/{id}/events", get(build_events))
        .route("/api/workers", get(list_workers))
        .route_layer(middleware::from_fn_with_state(
            service.clone(),
            require_status_token,
        ));
    Router::new()
        .merge(status)
        .route("/healthz", get(|| async { "ok" }))
        .route("/hooks", post(hook_by_payload))
        .route("/hooks/{*repo}", post(hook_for_repo))
        .layer(DefaultBodyLimit::max(25 * 1024 * 1024))
        .with_state(service)
}

/// The cookie the status page keeps its access in.
const STATUS_COOKIE: &str = "hoist_status";

/// The cookie's value for a token: a digest, so the cookie never holds the configured token itself
/// and needs no quoting.
fn cookie_value(token: &str) -> String {
    hex::encode(Sha256::digest(format!("hoist-status-cookie:{token}")))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Lets a request to the status page or API through when no `status_token` is configured, or when
/// it carries the token (bearer header or the page's cookie); `/?token=` sets the cookie.
async fn require_status_token(State(svc): State<Svc>, req: Request, next: Next) -> Response {
    let Some(token) = svc.config.status_token.as_deref() else {
        return next.run(req).await;
    };
    let headers = req.headers();
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")))
        .any(|t| webhook::verify_token(token, t.trim()));
    let expected_cookie = cookie_value(token);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(|(k, _)| *k == STATUS_COOKIE)
        .any(|(_, v)| webhook::verify_token(&expected_cookie, v));
    if bearer || cookie {
        return next.run(req).await;
    }
    if req.uri().path() == "/" {
        let query = Query::<TokenQuery>::try_from_uri(req.uri()).ok();
        if let Some(t) = query.and_then(|q| q.0.token) {
            if webhook::verify_token(token, &t) {
                let set =
                    format!("{STATUS_COOKIE}={expected_cookie}; Path=/; HttpOnly; SameSite=Lax");
                return (
                    StatusCode::SEE_OTHER,
                    [
                        (header::LOCATION, "./".to_string()),
                        (header::SET_COOKIE, set),
                    ],
                )
                    .into_response();
            }
        }
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, r#"Bearer realm="hoist serve""#)],
            Html(
                "<!doctype html><title>hoist builds</title><h1>hoist builds</h1>\
                 <p>This status page needs the status token: open <code>/?token=TOKEN</code> once \
                 (a cookie keeps it), or send <code>Authorization: Bearer TOKEN</code>.</p>",
            ),
        )
            .into_response();
    }
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "the status API needs `Authorization: Bearer <status_token>`",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(r#"Bearer realm="hoist serve""#),
    );
    resp
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

async fn hook_by_payload(State(svc): State<Svc>, headers: HeaderMap, body: Bytes) -> Response {
    match webhook::repository_name(&body) {
        Some(name) if svc.config.repository(&name).is_some() => {
            hook(svc, name, headers, body).await
        }
        Some(name) => error(StatusCode::NOT_FOUND, format!("no repository {name:?}")),
        None => error(
            StatusCode::NOT_FOUND,
            "payload names no repository: use /hooks/<repository>",
        ),
    }
}

async fn hook_for_repo(
    State(svc): State<Svc>,
    Path(repo): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if svc.config.repository(&repo).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no repository {repo:?}"));
    }
    hook(svc, repo, headers, body).await
}

async fn hook(svc: Svc, repo_name: String, headers: HeaderMap, body: Bytes) -> Response {
    if !svc.config.role.accepts_hooks() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this hoist serve runs builds only (--role worker): send webhooks to a web or all process",
        );
    }
    let Some(provider) = webhook::provider(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unrecognised webhook: no GitHub, GitLab, Gitea/Forgejo or hoist signature headers",
        );
    };
    let repo = svc
        .config
        .repository(&repo_name)
        .expect("checked by caller");
    let secret = svc.config.secret_for(repo);
    match webhook::parse(provider, &headers, &body, secret) {
        Err(Rejection::Unauthorized(why)) => {
            eprintln!(
                "{} rejected {provider:?} webhook for {repo_name}: {why}",
                crate::clock::timestamp()
            );
            error(StatusCode::UNAUTHORIZED, why)
        }
        Err(Rejection::BadRequest(why)) => error(StatusCode::BAD_REQUEST, why),
        Ok(Event::Ignored(why)) => {
            (StatusCode::OK, Json(json!({ "ignored": why }))).into_response()
        }
        Ok(Event::Push(push)) => {
            let delivery = webhook::delivery_id(provider, &headers, &body);
            let s = svc.clone();
            let accepted = tokio::task::spawn_blocking(move || {
                if let Some(d) = &delivery {
                    if !s.queue.remember_delivery(&repo_name, d)? {
                        return Ok(Err(d.clone()));
                    }
                }
                let accepted = s.accept(&repo_name, &push);
                if let (Err(_), Some(d)) = (&accepted, &delivery) {
                    let _ = s.queue.forget_delivery(&repo_name, d);
                }
                accepted.map(Ok)
            })
            .await;
            let accepted = match accepted {
                Ok(Ok(Err(replayed))) => {
                    eprintln!(
                        "{} refused {provider:?} webhook for {}: delivery {replayed} was seen before (replay)",
                        crate::clock::timestamp(),
                        repo.name
                    );
                    return error(
                        StatusCode::CONFLICT,
                        format!("delivery {replayed} was already received: replay refused"),
                    );
                }
                Ok(Ok(Ok(a))) => Ok(Ok(a)),
                Ok(Err(e)) => Ok(Err(e)),
                Err(e) => Err(e),
            };
            match accepted {
                Ok(Ok(a)) if a.queued.is_empty() => (
                    StatusCode::OK,
                    Json(json!({ "queued": [], "ignored": "no build rule matches" })),
                )
                    .into_response(),
                Ok(Ok(a)) => (StatusCode::ACCEPTED, Json(a)).into_response(),
                Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
    }
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list_builds(State(svc): State<Svc>, Query(q): Query<ListQuery>) -> Response {
    match svc.queue.list(q.limit.unwrap_or(50).min(1000)) {
        Ok(b) => Json(b).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn list_workers(State(svc): State<Svc>) -> Response {
    match svc.queue.workers() {
        Ok(w) => Json(w).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

fn read_log(svc: &Service, id: i64, offset: u64) -> String {
    svc.read_log(id, offset)
}

async fn get_build(State(svc): State<Svc>, Path(id): Path<i64>) -> Response {
    match svc.queue.get(id) {
        Ok(Some(b)) => {
            let mut v = serde_json::to_value(&b).unwrap_or_default();
            v["log"] = json!(read_log(&svc, id, 0));
            Json(v).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no build {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

#[derive(Deserialize)]
struct LogQuery {
    offset: Option<u64>,
}

async fn get_log(
    State(svc): State<Svc>,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> Response {
    match svc.queue.get(id) {
        Ok(Some(_)) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            read_log(&svc, id, q.offset.unwrap_or(0)),
        )
            .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no build {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

/// Server-sent events: `log` events carry new log text, a `state` event each state change; the stream
/// ends after the build's final state.
async fn build_events(
    State(svc): State<Svc>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    // Each log event's id is the log offset after it: a reconnecting EventSource sends it back as
    // Last-Event-ID and the stream resumes there instead of repeating the log.
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    struct Cursor {
        offset: u64,
        state: Option<String>,
        done: bool,
    }
    let start = Cursor {
        offset: resume,
        state: None,
        done: false,
    };
    let events = stream::unfold((svc, start), move |(svc, mut cur)| async move {
        if cur.done {
            return None;
        }
        loop {
            let build = svc.queue.get(id).ok().flatten();
            let mut out = Vec::new();
            // Whole lines only while the build runs; the page adds the line break back.
            let text = read_log(&svc, id, cur.offset);
            let upto = text.rfind('\n').map_or(0, |i| i + 1);
            if upto > 0 {
                cur.offset += upto as u64;
                out.push(
                    SseEvent::default()
                        .event("log")
                        .id(cur.offset.to_string())
                        .data(sse_text(&text[..upto])),
                );
            }
            match build {
                None => {
                    cur.done = true;
                    out.push(SseEvent::default().event("state").data("unknown"));
                }
                Some(b) => {
                    let state = serde_json::to_value(b.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    if cur.state.as_deref() != Some(&state) {
                        out.push(
                            SseEvent::default()
                                .event("state")
                                .data(serde_json::to_string(&b).unwrap_or_default()),
                        );
                        cur.state = Some(state);
                    }
                    if b.state.is_final() {
                        // One last read: the log may have grown since.
                        let tail = read_log(&svc, id, cur.offset);
                        if !tail.is_empty() {
                            cur.offset += tail.len() as u64;
                            out.push(
                                SseEvent::default()
                                    .event("log")
                                    .id(cur.offset.to_string())
                                    .data(sse_text(&tail)),
                            );
                        }
                        cur.done = true;
                    }
                }
            }
            if svc.is_stopping() {
                // Let graceful shutdown finish: the page's EventSource reconnects to the next start.
                cur.done = true;
            }
            if !out.is_empty() || cur.done {
                let s = stream::iter(out.into_iter().map(Ok));
                return Some((s, (svc, cur)));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    use futures_util::StreamExt;
    Sse::new(events.flatten()).keep_alive(KeepAlive::default())
}

/// SSE data cannot carry carriage returns (progress redraws): they become line breaks.
fn sse_text(s: &str) -> String {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.replace("\r\n", "\n").replace('\r', "\n")
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}
