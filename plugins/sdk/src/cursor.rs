//! The parts of a polling connector's cursor that do not depend on the
//! platform: the overlap window over a high-water mark, the versions
//! already returned inside it, and the queue of pushed order ids.
//!
//! A connector lists orders changed since `mark − overlap` (the overlap
//! catches rows the platform indexed late), so every sweep lists again some
//! rows it returned before. [`SeenVersions`] remembers which version of an
//! order was returned, so those rows are dropped without a detail call, and
//! is pruned to the next window so the cursor stays small.
//! [`advance_mark`] moves the mark to the newest change a sweep listed, but
//! never past the connector's clock plus a tolerance (a row dated in 2099
//! must not drag the window where nothing new is ever listed), and
//! [`window_start`] is where the next sweep starts. Orders that a verified
//! push named wait in a [`LookQueue`]; reading them updates the seen
//! versions but never the mark (the listing may not show their change yet).
//!
//! The types carry their own serde form (a JSON object for
//! [`SeenVersions`], a JSON array for [`LookQueue`]), so a connector can
//! embed them in its cursor, or keep an older wire shape and convert.
//! Marks are any ordered type: Unix milliseconds, a civil date-time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The mark after a sweep: the later of the `current` mark and the newest
/// change the sweep `listed`, pulled back to `ceiling` (the connector's
/// clock plus its future tolerance, see `connector::high_water`). `None`
/// while neither is known.
pub fn advance_mark<T: Ord>(current: Option<T>, listed: Option<T>, ceiling: T) -> Option<T> {
    let newest = match (current, listed) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    newest.map(|mark| mark.min(ceiling))
}

/// Where the next sweep starts: `back(mark)` (the mark less the overlap,
/// and whatever else the connector widens by), no later than `floor` (a
/// bound the connector keeps while rows may have been skipped). `None`
/// before anything is known: the first sweep looks back from the clock.
pub fn window_start<T: Ord>(
    mark: Option<T>,
    floor: Option<T>,
    back: impl FnOnce(T) -> T,
) -> Option<T> {
    match (mark.map(back), floor) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The version of each order returned so far (id → version, e.g. its
/// `updated_at`), for the orders the next window can still list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
#[serde(bound(
    serialize = "K: Serialize + Ord, V: Serialize",
    deserialize = "K: Deserialize<'de> + Ord, V: Deserialize<'de>"
))]
pub struct SeenVersions<K, V>(BTreeMap<K, V>);

impl<K: Ord, V> Default for SeenVersions<K, V> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<K: Ord, V> SeenVersions<K, V> {
    /// Nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `version` of order `id` is the one returned last.
    pub fn was_seen<Q>(&self, id: &Q, version: &V) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
        V: PartialEq,
    {
        self.0.get(id) == Some(version)
    }

    /// Remember that `version` of `id` was returned, unless a newer one
    /// already was (an older copy arriving late must not mask it).
    pub fn remember(&mut self, id: K, version: V)
    where
        V: Ord,
    {
        let newer = self.0.get(&id).is_none_or(|known| *known <= version);
        if newer {
            self.0.insert(id, version);
        }
    }

    /// The version recorded for `id`.
    pub fn get<Q>(&self, id: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.get(id)
    }

    /// The version recorded for `id`, to update in place.
    pub fn get_mut<Q>(&mut self, id: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.get_mut(id)
    }

    /// Record `version` for `id`, whatever was there (for versions that
    /// carry more than an order, such as the sweep that saw them).
    pub fn insert(&mut self, id: K, version: V) -> Option<V> {
        self.0.insert(id, version)
    }

    /// Forget `id`.
    pub fn remove<Q>(&mut self, id: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.remove(id)
    }

    /// True when `id` has a recorded version.
    pub fn contains_key<Q>(&self, id: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.contains_key(id)
    }

    /// Orders recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ids and versions, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter()
    }

    /// Ids, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.keys()
    }

    /// Keep only the versions the next window can list again (`keep`
    /// says so, e.g. "modified at or after the window start"): older ones
    /// can only come back with a newer version.
    pub fn prune(&mut self, keep: impl FnMut(&V) -> bool) {
        let mut keep = keep;
        self.0.retain(|_, version| keep(version));
    }

    /// Keep at most `max` entries, the newest by `age` (ties by id).
    /// Beyond the bound an unchanged order listed again costs one extra
    /// read; the host's snapshot comparison keeps that harmless.
    pub fn keep_newest<A: Ord>(&mut self, max: usize, age: impl Fn(&V) -> A)
    where
        K: Clone,
    {
        if self.0.len() <= max {
            return;
        }
        let mut by_age: Vec<(A, K)> = self
            .0
            .iter()
            .map(|(id, version)| (age(version), id.clone()))
            .collect();
        by_age.sort_unstable();
        let drop = by_age.len() - max;
        for (_, id) in by_age.into_iter().take(drop) {
            self.0.remove(&id);
        }
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SeenVersions<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Order ids a verified push named (`poll-request.look-at`), still to be
/// read by id, oldest first, each once. The host sends at most 100 per
/// poll; a bound keeps the cursor small if reads keep failing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LookQueue<T>(Vec<T>);

impl<T> Default for LookQueue<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> std::ops::Deref for LookQueue<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: PartialEq> LookQueue<T> {
    /// Append `ids` after those waiting, skipping any already waiting;
    /// once `max` wait, the rest are dropped (the listing still returns
    /// those orders, only later) and returned, for the log.
    pub fn queue(&mut self, ids: impl IntoIterator<Item = T>, max: usize) -> Vec<T> {
        let mut dropped = Vec::new();
        for id in ids {
            if self.0.contains(&id) {
                continue;
            }
            if self.0.len() >= max {
                dropped.push(id);
            } else {
                self.0.push(id);
            }
        }
        dropped
    }

    /// Take up to `count` ids from the front, to read now.
    pub fn take_front(&mut self, count: usize) -> Vec<T> {
        let count = count.min(self.0.len());
        self.0.drain(..count).collect()
    }

    /// Take the first id.
    pub fn pop_front(&mut self) -> Option<T> {
        (!self.0.is_empty()).then(|| self.0.remove(0))
    }

    /// Put `ids` back in front (a read stopped before them), in order.
    pub fn requeue_front(&mut self, ids: impl IntoIterator<Item = T>) {
        let mut front: Vec<T> = ids.into_iter().collect();
        front.append(&mut self.0);
        self.0 = front;
    }
}

impl<T> From<Vec<T>> for LookQueue<T> {
    fn from(ids: Vec<T>) -> Self {
        Self(ids)
    }
}

impl<T> From<LookQueue<T>> for Vec<T> {
    fn from(queue: LookQueue<T>) -> Self {
        queue.0
    }
}

/// A stored cursor's top-level JSON object, read field by field so that a
/// rejection names the field at fault and quotes (the start of) its value.
/// An absent or `null` field reads as the type's default, so fields added
/// later decode from cursors written before them.
#[derive(Debug)]
pub struct CursorFields(serde_json::Map<String, serde_json::Value>);

impl CursorFields {
    /// Parse the stored text; the error says why it is no cursor at all.
    pub fn parse(text: &str) -> Result<Self, String> {
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err("not a cursor of this connector: not a JSON object".to_owned()),
            Err(e) => Err(format!("not a cursor of this connector: {e}")),
        }
    }

    /// True when the object has a field `name` (even `null`).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Field `name`, or its type's default when absent or `null`; a value
    /// of the wrong shape is an error naming the field.
    pub fn get<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> Result<T, String> {
        match self.0.get(name) {
            None | Some(serde_json::Value::Null) => Ok(T::default()),
            Some(value) => T::deserialize(value).map_err(|e| {
                format!(
                    "`{name}` = {} is unusable: {e}",
                    crate::support::http::excerpt(&value.to_string(), 80)
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_takes_the_newest_listing_but_never_passes_the_ceiling() {
        assert_eq!(advance_mark(Some(5), Some(9), 100), Some(9));
        assert_eq!(advance_mark(Some(9), Some(5), 100), Some(9));
        assert_eq!(advance_mark(None, Some(5), 100), Some(5));
        assert_eq!(advance_mark(Some(5), None, 100), Some(5));
        assert_eq!(advance_mark(Some(5), Some(2099), 100), Some(100));
        assert_eq!(advance_mark::<i64>(None, None, 100), None);
    }

    #[test]
    fn the_window_starts_an_overlap_before_the_mark_and_no_later_than_the_floor() {
        let back = |mark: i64| mark - 10;
        assert_eq!(window_start(Some(100), None, back), Some(90));
        assert_eq!(window_start(Some(100), Some(50), back), Some(50));
        assert_eq!(window_start(Some(100), Some(95), back), Some(90));
        assert_eq!(window_start(None, Some(50), back), Some(50));
        assert_eq!(window_start(None, None, back), None);
    }

    #[test]
    fn seen_versions_keep_the_newest_prune_by_window_and_stay_bounded() {
        let mut seen: SeenVersions<String, i64> = SeenVersions::new();
        seen.remember("1".into(), 10);
        seen.remember("1".into(), 5);
        assert!(seen.was_seen("1", &10));
        assert!(!seen.was_seen("1", &5), "a late older copy does not mask");
        seen.remember("2".into(), 3);
        seen.prune(|updated| *updated >= 4);
        assert!(seen.contains_key("1") && !seen.contains_key("2"));

        let text = serde_json::to_string(&seen).unwrap_or_default();
        assert_eq!(text, r#"{"1":10}"#, "a plain JSON object");
        let back: SeenVersions<String, i64> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, seen);

        let mut many: SeenVersions<u64, i64> = (0..10).map(|n| (n, 100 - n as i64)).collect();
        many.keep_newest(3, |updated| *updated);
        assert_eq!(many.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn cursor_fields_default_what_is_missing_and_name_what_is_wrong() {
        let fields = CursorFields::parse(r#"{"v":1,"seen":null,"look":["x"]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(fields.has("v") && !fields.has("mark"));
        assert_eq!(fields.get::<u32>("v"), Ok(1));
        assert_eq!(fields.get::<Option<i64>>("mark"), Ok(None));
        assert_eq!(
            fields.get::<SeenVersions<String, i64>>("seen"),
            Ok(SeenVersions::new())
        );
        let bad = fields.get::<LookQueue<u64>>("look").unwrap_err();
        assert!(bad.starts_with(r#"`look` = ["x"] is unusable"#), "{bad}");
        assert!(
            CursorFields::parse("[]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(
            CursorFields::parse("{")
                .unwrap_err()
                .contains("not a cursor")
        );
    }

    #[test]
    fn pushed_ids_queue_once_in_order_and_bounded() {
        let mut look: LookQueue<u64> = LookQueue::default();
        assert!(look.queue([7, 8, 7], 4).is_empty());
        assert!(look.queue([8, 9], 4).is_empty(), "8 already waits");
        assert_eq!(*look, [7, 8, 9]);
        assert_eq!(look.queue([10, 11, 12], 4), [11, 12]);
        assert_eq!(look.take_front(2), [7, 8]);
        look.requeue_front([8]);
        assert_eq!(look.pop_front(), Some(8));
        assert_eq!(*look, [9, 10]);
        assert_eq!(serde_json::to_string(&look).unwrap_or_default(), "[9,10]");
        assert_eq!(look.take_front(5), [9, 10]);
        assert_eq!(look.pop_front(), None);
    }
}
