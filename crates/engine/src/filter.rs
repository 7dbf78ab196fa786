//! Which LSUs a storage server offers: the `lsus` list and the `lsu_prefix` of its
//! `[[server]]` entry. Used by both data paths and the control path.

/// The `lsus` list and the `lsu_prefix`, when given.
#[derive(Debug, Clone, Default)]
pub struct LsuFilter {
    pub names: Option<Vec<String>>,
    pub prefix: Option<String>,
}

impl LsuFilter {
    pub fn matches(&self, lsu: &str) -> bool {
        self.names.as_ref().is_none_or(|l| l.iter().any(|x| x == lsu))
            && self.prefix.as_ref().is_none_or(|p| lsu.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::LsuFilter;

    #[test]
    fn names_and_prefix_both_apply() {
        assert!(LsuFilter::default().matches("any"));
        let f = LsuFilter { names: Some(vec!["nbu-a".into(), "b".into()]), prefix: Some("nbu-".into()) };
        assert!(f.matches("nbu-a"));
        assert!(!f.matches("b"), "listed but without the prefix");
        assert!(!f.matches("nbu-c"), "prefixed but not listed");
    }
}
