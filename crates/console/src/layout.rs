//! A layered, left-to-right layout of a directed graph (lineage: data flows left to right).
//! Layers by longest path from the sources (edges that close a cycle are ignored), order
//! within a layer by repeated barycenter sweeps, which keeps most edges short and uncrossed.

/// Where each node goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Layer (column) and row of each node, by node index.
    pub layer: Vec<usize>,
    pub row: Vec<usize>,
    pub layers: usize,
    /// Rows of the tallest layer.
    pub rows: usize,
}

/// Lays out `n` nodes joined by `edges` (source, target).
pub fn layered(n: usize, edges: &[(usize, usize)]) -> Layout {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut inc: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a < n && b < n && a != b {
            out[a].push(b);
            inc[b].push(a);
        }
    }
    let order = acyclic_order(&out);
    // Position of each node in `order`: an edge pointing backwards in it closes a cycle.
    let mut pos = vec![0usize; n];
    for (i, &v) in order.iter().enumerate() {
        pos[v] = i;
    }
    let mut layer = vec![0usize; n];
    for &v in &order {
        for &w in &out[v] {
            if pos[w] > pos[v] {
                layer[w] = layer[w].max(layer[v] + 1);
            }
        }
    }
    // Pull sources right, next to what they feed (a stream read by a late job otherwise sits
    // far left with a long edge).
    for &v in order.iter().rev() {
        if inc[v].iter().all(|&u| pos[u] > pos[v]) {
            if let Some(m) = out[v]
                .iter()
                .filter(|&&w| pos[w] > pos[v])
                .map(|&w| layer[w])
                .min()
            {
                layer[v] = m.saturating_sub(1).max(layer[v]);
            }
        }
    }
    let layers = layer.iter().max().map_or(0, |m| m + 1);
    let mut by_layer: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for &v in &order {
        by_layer[layer[v]].push(v);
    }
    let mut row = vec![0usize; n];
    let place = |by_layer: &Vec<Vec<usize>>, row: &mut Vec<usize>| {
        for l in by_layer {
            for (i, &v) in l.iter().enumerate() {
                row[v] = i;
            }
        }
    };
    place(&by_layer, &mut row);
    for sweep in 0..4 {
        let down = sweep % 2 == 0;
        let seq: Vec<usize> = if down {
            (1..layers).collect()
        } else {
            (0..layers.saturating_sub(1)).rev().collect()
        };
        for l in seq {
            let neighbours = |v: usize| -> Vec<usize> {
                let adj = if down { &inc[v] } else { &out[v] };
                adj.iter()
                    .copied()
                    .filter(|&u| if down { layer[u] < l } else { layer[u] > l })
                    .collect()
            };
            let mut keyed: Vec<(f64, usize, usize)> = by_layer[l]
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let ns = neighbours(v);
                    let b = if ns.is_empty() {
                        i as f64
                    } else {
                        ns.iter().map(|&u| row[u] as f64).sum::<f64>() / ns.len() as f64
                    };
                    (b, i, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            by_layer[l] = keyed.into_iter().map(|(_, _, v)| v).collect();
            for (i, &v) in by_layer[l].iter().enumerate() {
                row[v] = i;
            }
        }
    }
    let rows = by_layer.iter().map(Vec::len).max().unwrap_or(0);
    Layout {
        layer,
        row,
        layers,
        rows,
    }
}

/// The nodes in an order where every edge that is not part of a cycle points forward: a
/// depth-first post-order, reversed (iterative, so deep graphs cannot overflow the stack).
fn acyclic_order(out: &[Vec<usize>]) -> Vec<usize> {
    let n = out.len();
    let mut seen = vec![false; n];
    let mut post = Vec::with_capacity(n);
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for s in 0..n {
        if seen[s] {
            continue;
        }
        seen[s] = true;
        stack.push((s, 0));
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&w) = out[v].get(*next) {
                *next += 1;
                if !seen[w] {
                    seen[w] = true;
                    stack.push((w, 0));
                }
            } else {
                post.push(v);
                stack.pop();
            }
        }
    }
    post.reverse();
    post
}

/// Edges whose ends are in adjacent-or-later layers and whose rows swap: how many pairs
/// of edges between the same two layers cross (for tests and for judging a layout).
pub fn crossings(l: &Layout, edges: &[(usize, usize)]) -> usize {
    let spans: Vec<(usize, usize, usize)> = edges
        .iter()
        .filter(|(a, b)| l.layer[*b] == l.layer[*a] + 1)
        .map(|&(a, b)| (l.layer[a], l.row[a], l.row[b]))
        .collect();
    let mut c = 0;
    for (i, x) in spans.iter().enumerate() {
        for y in &spans[i + 1..] {
            if x.0 == y.0 && ((x.1 < y.1 && x.2 > y.2) || (x.1 > y.1 && x.2 < y.2)) {
                c += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_runs_left_to_right() {
        let l = layered(4, &[(0, 1), (1, 2), (2, 3)]);
        assert_eq!(l.layer, vec![0, 1, 2, 3]);
        assert_eq!(l.layers, 4);
        assert_eq!(l.rows, 1);
    }

    #[test]
    fn every_edge_outside_a_cycle_points_right() {
        // A diamond with a tail and a side branch.
        let edges = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (5, 4)];
        let l = layered(6, &edges);
        for (a, b) in edges {
            assert!(l.layer[a] < l.layer[b], "{a}->{b} in {l:?}");
        }
        // The side source sits right next to what it feeds.
        assert_eq!(l.layer[5] + 1, l.layer[4]);
    }

    #[test]
    fn a_cycle_does_not_hang_and_keeps_nodes_apart() {
        let l = layered(3, &[(0, 1), (1, 2), (2, 0)]);
        let mut cells: Vec<(usize, usize)> = (0..3).map(|v| (l.layer[v], l.row[v])).collect();
        cells.sort();
        cells.dedup();
        assert_eq!(cells.len(), 3, "two nodes share a cell: {l:?}");
    }

    #[test]
    fn barycenter_sweeps_remove_avoidable_crossings() {
        // Two parallel chains whose second layer starts out crossed.
        let edges = [(0, 3), (1, 2), (2, 4), (3, 5)];
        let l = layered(6, &edges);
        assert_eq!(crossings(&l, &edges), 0, "{l:?}");
    }

    #[test]
    fn a_large_graph_is_laid_out() {
        let n = 20_000;
        let edges: Vec<(usize, usize)> = (1..n).map(|i| ((i - 1) / 3, i)).collect();
        let l = layered(n, &edges);
        assert_eq!(l.layer.len(), n);
        assert!(edges.iter().all(|&(a, b)| l.layer[a] < l.layer[b]));
    }
}
