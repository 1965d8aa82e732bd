//! `--allow RULE[:PATTERN]`: silencing findings by rule and target glob.

use super::{Finding, Rule};
use std::str::FromStr;

/// Silences findings of one rule, optionally only those whose target
/// matches a glob ([`glob_match`]).
///
/// ```
/// use kcmp_map::audit::{Allow, Rule};
/// let a: Allow = "deleted-held:/tmp/*".parse().unwrap();
/// assert_eq!(a.rule, Rule::DeletedHeld);
/// assert_eq!(a.pattern.as_deref(), Some("/tmp/*"));
/// assert!("no-such-rule".parse::<Allow>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// The rule silenced.
    pub rule: Rule,
    /// A glob on the finding's target; `None` silences every target.
    pub pattern: Option<String>,
}

impl Allow {
    /// Whether this allowance silences `finding`.
    pub fn matches(&self, finding: &Finding) -> bool {
        finding.rule == self.rule
            && self
                .pattern
                .as_deref()
                .is_none_or(|p| glob_match(p, &finding.target))
    }
}

impl FromStr for Allow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (rule, pattern) = match s.split_once(':') {
            Some((r, p)) => (r, Some(p.to_string())),
            None => (s, None),
        };
        Ok(Allow {
            rule: rule.parse()?,
            pattern,
        })
    }
}

/// Shell-style glob as in a `case` pattern (`fnmatch` without
/// `FNM_PATHNAME`): `*` matches any run of characters, `/` included; `?`
/// one character; `[abc]`, `[a-z]`, `[!x]` a class; `\` quotes the next
/// character.
///
/// ```
/// use kcmp_map::audit::glob_match;
/// assert!(glob_match("/sys/fs/cgroup/*", "/sys/fs/cgroup/a/b"));
/// assert!(glob_match("pipe:\\[*]", "pipe:[42]"));
/// assert!(glob_match("/tmp/[!a]?", "/tmp/bc"));
/// assert!(!glob_match("/tmp/*.log", "/tmp/x.txt"));
/// ```
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
            continue;
        }
        if let Some(next) = match_one(&p, pi, t[ti]) {
            pi = next;
            ti += 1;
            continue;
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches one pattern element at `pi` against `c`; the index after the
/// element when it matches.
fn match_one(p: &[char], pi: usize, c: char) -> Option<usize> {
    match *p.get(pi)? {
        '?' => Some(pi + 1),
        '\\' if pi + 1 < p.len() => (p[pi + 1] == c).then_some(pi + 2),
        '[' => match_class(p, pi, c),
        other => (other == c).then_some(pi + 1),
    }
}

fn match_class(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() && (first || p[i] != ']') {
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            hit |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= p[i] == c;
            i += 1;
        }
    }
    if i >= p.len() {
        // No closing bracket: a literal '['.
        return (c == '[').then_some(start + 1);
    }
    (hit != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[!a-c]x", "bx"));
        assert!(glob_match("[]]", "]"));
        assert!(glob_match("a[", "a["));
        assert!(glob_match("\\*", "*"));
        assert!(!glob_match("\\*", "x"));
        assert!(glob_match("/tmp/*/deleted*", "/tmp/k/deleted-a (deleted)"));
    }
}
