//! `/`: a plain page linking each service's API docs (until the operator dashboard exists).

use axum::response::Html;

pub fn page(services: &[&str]) -> Html<String> {
    let rows: String = services
        .iter()
        .map(|s| {
            format!(
                "<tr><td><code>/{s}</code></td><td><a href=\"/{s}/swagger-ui/\">API docs</a></td>\
                 <td><a href=\"/{s}/v3/api-docs\">OpenAPI</a></td><td><a href=\"/{s}/health\">health</a></td></tr>"
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tandem</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem}}td{{padding:.3rem 1rem}}</style></head>\
         <body><h1>tandem</h1><p>The prison data estate: NOMIS, the DPS services and the machinery that keeps them in step.</p>\
         <table><thead><tr><th>service</th><th></th><th></th><th></th></tr></thead><tbody>{rows}</tbody></table>\
         <p><a href=\"/metrics\">metrics</a></p></body></html>"
    ))
}
