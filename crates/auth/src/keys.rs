//! The RS256 signing key: generated with aws-lc-rs (jsonwebtoken cannot generate keys),
//! stored as a PKCS#8 PEM, published as a JWK whose `kid` is its RFC 7638 thumbprint —
//! so the kid follows from the key and there is no second file to keep in step.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One public key as JWKS publishes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Jwk {
    /// Always `RSA`.
    pub kty: String,
    /// The key id tokens carry in their header.
    #[serde(default)]
    pub kid: String,
    /// Always `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Always `RS256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// The modulus, base64url without padding.
    pub n: String,
    /// The public exponent, base64url without padding.
    pub e: String,
}

/// A JWKS document (`/.well-known/jwks.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// A private key ready to sign, with its public half.
pub(crate) struct SigningKey {
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    pub(crate) jwk: Jwk,
}

const PEM_LABEL: &str = "PRIVATE KEY";

/// A new RSA 2048 key as PKCS#8 PEM.
pub(crate) fn generate_pem() -> Result<String, String> {
    let pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|e| format!("RSA key generation failed: {e}"))?;
    let der = pair
        .as_der()
        .map_err(|e| format!("PKCS#8 serialisation failed: {e}"))?;
    Ok(pem_encode(der.as_ref()))
}

fn pem_encode(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {PEM_LABEL}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    out
}

fn pem_decode(pem: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    let end = format!("-----END {PEM_LABEL}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| format!("no '{begin}' line (a PKCS#8 PEM is expected)"))?;
    let body = &pem[start + begin.len()..];
    let stop = body.find(&end).ok_or_else(|| format!("no '{end}' line"))?;
    let b64: String = body[..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).map_err(|e| format!("bad base64: {e}"))
}

impl SigningKey {
    /// Parses a PKCS#8 PEM RSA private key (of at least 2048 bits).
    pub(crate) fn from_pem(pem: &str) -> Result<Self, String> {
        let der = pem_decode(pem)?;
        let pair = KeyPair::from_pkcs8(&der).map_err(|e| format!("not an RSA private key: {e}"))?;
        if pair.public_modulus_len() < 256 {
            return Err(format!(
                "the key has {} bits; at least 2048 are required",
                pair.public_modulus_len() * 8
            ));
        }
        let components: PublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let n = URL_SAFE_NO_PAD.encode(&components.n);
        let e = URL_SAFE_NO_PAD.encode(&components.e);
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("jsonwebtoken rejected the key: {e}"))?;
        let decoding = DecodingKey::from_rsa_raw_components(&components.n, &components.e);
        let kid = thumbprint(&n, &e);
        Ok(Self {
            encoding,
            decoding,
            jwk: Jwk {
                kty: "RSA".into(),
                kid,
                use_: Some("sig".into()),
                alg: Some("RS256".into()),
                n,
                e,
            },
        })
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url): members in lexicographic order, no spaces.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_roundtrips_through_pem() {
        let pem = generate_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let a = SigningKey::from_pem(&pem).unwrap();
        let b = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(a.jwk, b.jwk);
        assert_eq!(a.jwk.e, "AQAB");
        // 2048-bit modulus = 256 bytes = 342 base64url chars
        assert_eq!(a.jwk.n.len(), 342);
        assert_eq!(a.jwk.kid.len(), 43);
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        assert!(
            SigningKey::from_pem("hello")
                .err()
                .unwrap()
                .contains("PKCS#8")
        );
        let bad = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(
            SigningKey::from_pem(bad)
                .err()
                .unwrap()
                .contains("not an RSA private key")
        );
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
