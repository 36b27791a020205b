//! Translating subscriptions into RabbitMQ names and topic binding keys.

use std::collections::BTreeSet;
use std::time::Duration;

/// The topic binding key for one `eventType` filter. Routing keys split on `.`, and in a
/// binding key a whole word `*` or `#` is a wildcard, so:
/// - an exact type binds as itself (`non-associations.created`);
/// - a prefix `a.b.*` (or `a.b.c*`) binds the words up to its last `.` then `#`
///   (`a.b.#`), and `*` or a prefix without a `.` binds `#`;
/// - a filter with a literal `#` or `*` word falls back to `#`.
///
/// The key may let through more than the filter (`a.b.#` also matches `a.b`; `a.#`
/// matches `a.bd` for `a.bc*`): `receive` drops what [`Subscription::accepts`] refuses.
///
/// [`Subscription::accepts`]: tandem_bus::Subscription::accepts
pub fn binding_key(filter: &str) -> String {
    let key = match filter.strip_suffix('*') {
        None => filter.to_string(),
        Some(prefix) => match prefix.rfind('.') {
            Some(i) => format!("{}#", &prefix[..=i]),
            None => "#".to_string(),
        },
    };
    if key.split('.').any(|w| w == "*" || w == "#") && key != "#" && !key.ends_with(".#") {
        return "#".to_string();
    }
    if key
        .strip_suffix(".#")
        .is_some_and(|head| head.split('.').any(|w| w == "*" || w == "#"))
    {
        return "#".to_string();
    }
    key
}

/// The distinct binding keys of a filter list (`#` for no filter: every event).
pub(crate) fn binding_keys(filters: &[String]) -> BTreeSet<String> {
    if filters.is_empty() {
        return BTreeSet::from(["#".to_string()]);
    }
    filters.iter().map(|f| binding_key(f)).collect()
}

/// The wait queue holding messages of `queue` backing off for `delay`.
pub(crate) fn wait_queue(queue: &str, delay: Duration) -> String {
    format!("{queue}.wait.{}", delay.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix_keys() {
        assert_eq!(
            binding_key("non-associations.created"),
            "non-associations.created"
        );
        assert_eq!(binding_key("b.*"), "b.#");
        assert_eq!(binding_key("a.b.c*"), "a.b.#");
        assert_eq!(binding_key("abc*"), "#");
        assert_eq!(binding_key("*"), "#");
        assert_eq!(binding_key("a.#.b"), "#");
        assert_eq!(binding_key("a.#.b*"), "#");
    }

    #[test]
    fn keys_of_a_subscription() {
        assert_eq!(binding_keys(&[]), BTreeSet::from(["#".to_string()]));
        let keys = binding_keys(&["a.*".into(), "a.x*".into(), "b".into()]);
        assert_eq!(keys, BTreeSet::from(["a.#".to_string(), "b".to_string()]));
        assert_eq!(wait_queue("q", Duration::from_secs(3)), "q.wait.3000");
    }
}
