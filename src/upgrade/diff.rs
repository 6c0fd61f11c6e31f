//! A line diff for a person: the lines only in one file (`-`) and only in the other (`+`), in
//! order (longest common subsequence), at most `max` lines shown.

/// `-` lines of `a` not in `b`, `+` lines of `b` not in `a`, in file order.
pub fn lines(a: &str, b: &str, max: usize) -> Vec<String> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    // Files this large are not shown line by line (the table would be n * m).
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        return vec![format!("({} lines -> {} lines)", a.len(), b.len())];
    }
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: common lines of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out, mut hidden) = (0, 0, Vec::new(), 0usize);
    let mut push = |line: String, out: &mut Vec<String>| {
        if out.len() < max {
            out.push(line);
        } else {
            hidden += 1;
        }
    };
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            push(format!("+ {}", b[j]), &mut out);
            j += 1;
        } else {
            push(format!("- {}", a[i]), &mut out);
            i += 1;
        }
    }
    if hidden > 0 {
        out.push(format!("... {hidden} more lines differ"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_changed_lines_in_order() {
        let a = "one\ntwo\nthree\nfour\n";
        let b = "one\n2\nthree\nfour\nfive\n";
        assert_eq!(super::lines(a, b, 10), ["+ 2", "- two", "+ five"]);
        assert_eq!(super::lines(a, b, 1), ["+ 2", "... 2 more lines differ"]);
        assert!(super::lines(a, a, 10).is_empty());
    }
}
