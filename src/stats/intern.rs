//! String interning for counter keys: tenant ids, table and column names
//! become small integers. Bounded: past the limit every new name shares one
//! "(other)" id, so hostile or runaway input cannot grow memory without end.

use std::sync::{Arc, RwLock};

use dashmap::DashMap;

/// Id shared by names beyond the limit.
pub const OTHER: u32 = u32::MAX;
const OTHER_NAME: &str = "(other)";

pub struct Interner {
    ids: DashMap<Arc<str>, u32>,
    names: RwLock<Vec<Arc<str>>>,
    max: usize,
}

impl Interner {
    pub fn new(max: usize) -> Interner {
        Interner {
            ids: DashMap::new(),
            names: RwLock::new(Vec::new()),
            max,
        }
    }

    /// The id of `name`; ids start at 1 (0 means "none" to callers).
    pub fn id(&self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        if names.len() >= self.max {
            return OTHER;
        }
        let name: Arc<str> = Arc::from(name);
        names.push(name.clone());
        let id = names.len() as u32;
        self.ids.insert(name, id);
        id
    }

    /// The id of `name` if it has one, without assigning one.
    pub fn find(&self, name: &str) -> Option<u32> {
        self.ids.get(name).map(|id| *id)
    }

    /// The name of an id; `None` for 0 (no name).
    pub fn name(&self, id: u32) -> Option<Arc<str>> {
        match id {
            0 => None,
            OTHER => Some(Arc::from(OTHER_NAME)),
            _ => {
                let names = self.names.read().unwrap_or_else(|e| e.into_inner());
                names.get(id as usize - 1).cloned()
            }
        }
    }

    pub fn len(&self) -> usize {
        self.names.read().map(|n| n.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_bounded() {
        let i = Interner::new(2);
        let a = i.id("a");
        assert_eq!(i.id("a"), a);
        let b = i.id("b");
        assert_ne!(a, b);
        assert_eq!(i.id("c"), OTHER);
        assert_eq!(i.name(a).as_deref(), Some("a"));
        assert_eq!(i.name(OTHER).as_deref(), Some("(other)"));
        assert_eq!(i.name(0), None);
        assert_eq!(i.len(), 2);
    }
}
