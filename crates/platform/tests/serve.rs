//! Serving over real TCP: a slow client's request head or body is given up on in bounded
//! time (the head by closing the connection, the body with a 408 ErrorResponse), and
//! shutdown lets the request in progress finish.

use std::time::Duration;

use serde_json::Value;
use tandem_platform::http::{Json, Service, finish, mount_service};
use tandem_platform::serve::{Timeouts, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Echoes the body after a pause (a request in progress at shutdown).
#[utoipa::path(post, path = "/echo", responses((status = 200)))]
async fn echo(Json(body): Json<Value>) -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    Json(body)
}

const SHORT: Timeouts = Timeouts {
    header_read: Duration::from_millis(300),
    body_read: Duration::from_millis(300),
};

/// Serves the probe service; returns its address and the shutdown trigger.
async fn start() -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = finish(mount_service(Service::new(
        "probe-api",
        "Probe",
        OpenApiRouter::new().routes(routes!(echo)),
    )));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router, SHORT, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

/// A connection that has sent `raw` (perhaps not a whole request).
async fn send(addr: std::net::SocketAddr, raw: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    s
}

/// Everything the server sends until it closes the connection (at most 5 s).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got))
        .await
        .expect("the server kept a slow client's connection open")
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_whole_request_is_answered() {
    let (addr, stop, server) = start().await;
    let mut s = send(
        addr,
        b"POST /probe-api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}",
    )
    .await;
    let got = read_to_close(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with("{\"a\":1}"), "{got}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn half_a_request_head_is_given_up_on() {
    let (addr, _stop, _server) = start().await;
    let mut s = send(addr, b"GET /probe-api/health HTTP/1.1\r\nHost: x\r\n").await;
    let started = std::time::Instant::now();
    read_to_close(&mut s).await;
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_body_short_of_its_length_is_a_408() {
    let (addr, _stop, _server) = start().await;
    let mut s = send(
        addr,
        b"POST /probe-api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{}",
    )
    .await;
    let got = read_to_close(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    let body = &got[got.find("\r\n\r\n").unwrap() + 4..];
    let err: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {got}"));
    assert_eq!(err["status"], 408, "{err}");
    assert!(
        err["userMessage"]
            .as_str()
            .is_some_and(|m| m.contains("Content-Length")),
        "{err}"
    );
}

#[tokio::test]
async fn shutdown_lets_the_request_in_progress_finish() {
    let (addr, stop, server) = start().await;
    let mut s = send(
        addr,
        b"POST /probe-api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    let got = read_to_close(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returned after its last request")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}
