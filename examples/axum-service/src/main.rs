//! A todo service as people write them with axum: shared state behind `Arc<RwLock<..>>`, async
//! handlers that await, JSON in and out. The handlers are marked `#[hotswap::hot]` as they are
//! written; under `cargo hotswap run`, an edit to any of them takes effect for the next request,
//! while the todos stay in memory.
//!
//! Try it: `PORT=3000 cargo hotswap run`, then
//! `curl -d '{"title":"write docs"}' -H 'content-type: application/json' localhost:3000/todos`,
//! `curl localhost:3000/todos`, `curl localhost:3000/summary`; edit a handler and save.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

/// A todo, as stored and as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Todo {
    id: u64,
    title: String,
    done: bool,
    /// What it costs to get done, in cents.
    cost: Price,
}

/// A new todo, as received.
#[derive(Debug, Deserialize)]
struct NewTodo {
    title: String,
    #[serde(default)]
    cost: Price,
}

// ANCHOR: summary
/// An amount in cents.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Price(u64);

/// How a price reads in the summary.
#[hotswap::hot]
impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// The state every handler shares.
type Db = Arc<RwLock<BTreeMap<u64, Todo>>>;

/// A summary of the todos, borrowed from the store while it is written.
struct Summary<'a> {
    todos: &'a BTreeMap<u64, Todo>,
}

#[hotswap::hot]
impl<'a> Summary<'a> {
    /// One line per todo and a total.
    fn render(&self) -> String {
        let mut out = String::new();
        let mut total = 0;
        for todo in self.todos.values() {
            let mark = if todo.done { "x" } else { " " };
            out.push_str(&format!("[{mark}] {} {} ({})\n", todo.id, todo.title, todo.cost));
            total += todo.cost.0;
        }
        out.push_str(&format!("total: {}", Price(total)));
        out
    }
}

// ANCHOR_END: summary

/// `GET /todos`: every todo, as JSON.
#[hotswap::hot]
async fn list(State(db): State<Db>) -> Response {
    let todos: Vec<Todo> = db.read().await.values().cloned().collect();
    axum::Json(todos).into_response()
}

/// `POST /todos`: stores a new todo.
#[hotswap::hot]
async fn create(State(db): State<Db>, axum::Json(input): axum::Json<NewTodo>) -> Response {
    let mut todos = db.write().await;
    let id = todos.keys().next_back().map_or(1, |last| last + 1);
    let todo = Todo {
        id,
        title: input.title,
        done: false,
        cost: input.cost,
    };
    tracing::info!(id, title = %todo.title, "created");
    todos.insert(id, todo.clone());
    (StatusCode::CREATED, axum::Json(todo)).into_response()
}

/// `POST /todos/{id}/done`: marks a todo done.
#[hotswap::hot]
async fn finish(State(db): State<Db>, Path(id): Path<u64>) -> Response {
    match db.write().await.get_mut(&id) {
        Some(todo) => {
            todo.done = true;
            axum::Json(todo.clone()).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no todo {id}")).into_response(),
    }
}

/// `GET /summary`: the todos as text, with their total cost.
#[hotswap::hot]
async fn summary(State(db): State<Db>) -> String {
    let todos = db.read().await;
    Summary { todos: &todos }.render()
}

/// `GET /greeting`: a greeting that takes a moment (it awaits a timer, as a handler awaits a
/// database).
#[hotswap::hot]
async fn greeting() -> String {
    tokio::time::sleep(Duration::from_millis(5)).await;
    "Hello from the todo service".to_owned()
}

/// `GET /slow`: an answer that takes five seconds, to see a request in flight during a patch.
#[hotswap::hot]
async fn slow() -> String {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "slow answer one".to_owned()
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let db = Db::default();
    let app = Router::new()
        .route("/todos", get(list).post(create))
        .route("/todos/{id}/done", axum::routing::post(finish))
        .route("/summary", get(summary))
        .route("/greeting", get(greeting))
        .route("/slow", get(slow))
        .route("/pid", get(|| async { std::process::id().to_string() }))
        .with_state(db);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("the port is free");
    println!("listening on http://{}", listener.local_addr().expect("bound"));
    axum::serve(listener, app).await.expect("the server runs");
}
