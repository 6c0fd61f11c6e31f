//! Dify's route table (`dify::LOCATIONS`, the one the proxy serves) as Gateway API HTTPRoutes,
//! or an Ingress; and the certificate as cert-manager objects: an ACME Issuer with the same
//! directory and e-mail, and a Certificate for the domains.

use serde_json::{json, Value};

use super::names::k8s;
use super::{IngressKind, Options, Unmapped};
use crate::dify::{Location, API, API_WEBSOCKET, LOCATIONS};
use crate::stack::model::Stack;

pub const GATEWAY: &str = "dify";
pub const TLS_SECRET: &str = "dify-tls";
pub const ISSUER: &str = "dify-acme";

/// Each location with the Service and port it reaches; `/socket.io/` goes to the api when
/// there is no api_websocket service (as the proxy does); a location whose service is not in
/// the stack is left out (the proxy answers 503 there).
pub fn backends(stack: &Stack) -> Vec<(Location, String, u16)> {
    let ports = crate::stack::fronted::Ports::of(stack);
    LOCATIONS
        .iter()
        .filter_map(|l| {
            let service = match l.service {
                API_WEBSOCKET if stack.service(API_WEBSOCKET).is_none() => API,
                s => s,
            };
            stack.service(service)?;
            Some((*l, k8s(service), ports.get(service)?))
        })
        .collect()
}

pub fn objects(stack: &Stack, opts: &Options, unmapped: &mut Vec<Unmapped>) -> Vec<Value> {
    let routes = backends(stack);
    for l in LOCATIONS
        .iter()
        .filter(|l| !routes.iter().any(|(r, _, _)| r.prefix == l.prefix))
    {
        unmapped.push(Unmapped {
            service: l.service.into(),
            key: format!("route {}", l.prefix),
            note: "the service is not in this stack: no route".into(),
        });
    }
    if routes.iter().any(|(l, _, _)| l.hook_url) {
        let host = opts.domains.first().map_or("<your domain>", String::as_str);
        unmapped.push(Unmapped { service: "plugin_daemon".into(), key: "route /e/ Dify-Hook-Url".into(), note: format!("set to https://{host} (a route can only add a fixed header; Dify's nginx adds the request's own URL)") });
    }
    match opts.ingress {
        IngressKind::Gateway => vec![
            gateway(opts),
            http_route(&routes, opts),
            redirect_route(opts),
        ],
        IngressKind::Ingress => vec![ingress(&routes, opts)],
    }
}

fn meta(name: &str, opts: &Options) -> Value {
    json!({ "name": name, "namespace": opts.namespace, "labels": { "app.kubernetes.io/part-of": "dify" } })
}

fn gateway(opts: &Options) -> Value {
    let mut https = json!({
        "name": "https", "protocol": "HTTPS", "port": 443,
        "tls": { "mode": "Terminate", "certificateRefs": [{ "kind": "Secret", "name": TLS_SECRET }] },
        "allowedRoutes": { "namespaces": { "from": "Same" } },
    });
    let mut http = json!({ "name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": { "namespaces": { "from": "Same" } } });
    if let [one] = opts.domains.as_slice() {
        https["hostname"] = json!(one);
        http["hostname"] = json!(one);
    }
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": meta(GATEWAY, opts),
        "spec": { "gatewayClassName": opts.class, "listeners": [https, http] },
    })
}

fn http_route(routes: &[(Location, String, u16)], opts: &Options) -> Value {
    let hook = format!(
        "https://{}",
        opts.domains.first().map_or("localhost", String::as_str)
    );
    let rules: Vec<Value> = routes
        .iter()
        .map(|(l, service, port)| {
            let mut rule = json!({
                "matches": [{ "path": { "type": "PathPrefix", "value": l.prefix } }],
                "backendRefs": [{ "name": service, "port": port }],
            });
            if l.hook_url {
                rule["filters"] = json!([{ "type": "RequestHeaderModifier", "requestHeaderModifier": { "set": [{ "name": "Dify-Hook-Url", "value": hook }] } }]);
            }
            rule
        })
        .collect();
    let mut spec =
        json!({ "parentRefs": [{ "name": GATEWAY, "sectionName": "https" }], "rules": rules });
    if !opts.domains.is_empty() {
        spec["hostnames"] = json!(opts.domains);
    }
    json!({ "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": meta("dify", opts), "spec": spec })
}

/// Plain HTTP to HTTPS, as difyctl's :80 does (cert-manager adds its challenge route itself).
fn redirect_route(opts: &Options) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": meta("dify-https-redirect", opts),
        "spec": {
            "parentRefs": [{ "name": GATEWAY, "sectionName": "http" }],
            "rules": [{ "filters": [{ "type": "RequestRedirect", "requestRedirect": { "scheme": "https", "statusCode": 301 } }] }],
        },
    })
}

fn ingress(routes: &[(Location, String, u16)], opts: &Options) -> Value {
    let paths: Vec<Value> = routes
        .iter()
        .map(|(l, service, port)| json!({ "path": l.prefix, "pathType": "Prefix", "backend": { "service": { "name": service, "port": { "number": port } } } }))
        .collect();
    let rules: Vec<Value> = if opts.domains.is_empty() {
        vec![json!({ "http": { "paths": paths } })]
    } else {
        opts.domains
            .iter()
            .map(|d| json!({ "host": d, "http": { "paths": paths } }))
            .collect()
    };
    let mut spec = json!({ "ingressClassName": opts.class, "rules": rules });
    if !opts.domains.is_empty() {
        spec["tls"] = json!([{ "hosts": opts.domains, "secretName": TLS_SECRET }]);
    }
    json!({ "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("dify", opts), "spec": spec })
}

/// The ACME Issuer and the Certificate (none without domains: nothing to certify).
pub fn certificates(opts: &Options) -> Vec<Value> {
    if opts.domains.is_empty() {
        return Vec::new();
    }
    let solver = match opts.ingress {
        IngressKind::Gateway => {
            json!({ "http01": { "gatewayHTTPRoute": { "parentRefs": [{ "name": GATEWAY, "kind": "Gateway", "sectionName": "http" }] } } })
        }
        IngressKind::Ingress => {
            json!({ "http01": { "ingress": { "ingressClassName": opts.class } } })
        }
    };
    let mut acme = json!({ "server": opts.acme_directory, "privateKeySecretRef": { "name": "dify-acme-account" }, "solvers": [solver] });
    if let Some(email) = &opts.email {
        acme["email"] = json!(email);
    }
    vec![
        json!({ "apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": meta(ISSUER, opts), "spec": { "acme": acme } }),
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": meta("dify", opts),
            "spec": { "secretName": TLS_SECRET, "dnsNames": opts.domains, "issuerRef": { "name": ISSUER, "kind": "Issuer" } },
        }),
    ]
}
