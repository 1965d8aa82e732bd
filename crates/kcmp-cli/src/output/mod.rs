//! Output formats: human text (with colour on terminals), JSON, Graphviz.

pub mod style;
