//! Deduplication: the rule language under rules/, signature callstacks and
//! fingerprints. (Being written; see issue 5.)
