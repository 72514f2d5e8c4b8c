//! What one CloneSet reconcile does, decided without the API: OpenKruise v1.9.0's
//! arithmetic (`calculateDiffsWithExpectation`, ../shared/openkruise-api.md §6.1.3).
//! A reconcile either scales or updates, never both.

/// A pod as the plan sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// Its name.
    pub name: String,
    /// On the update revision.
    pub updated: bool,
    /// Available (ready for minReadySeconds, lifecycle normal, in-place ready).
    pub available: bool,
    /// Marked for deletion (`apps.kruise.io/specified-delete` or in `podsToDelete`).
    pub specified_delete: bool,
    /// In the lifecycle state PreparingDelete.
    pub preparing_delete: bool,
}

/// The numbers of the spec a plan needs, already scaled against `replicas`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Pods wanted.
    pub replicas: i64,
    /// Pods kept on the current revision.
    pub partition: i64,
    /// Extra pods allowed during an update (0 while paused).
    pub max_surge: i64,
    /// Pods that may be unavailable during an update.
    pub max_unavailable: i64,
    /// `scaleStrategy.maxUnavailable`: unavailable pods allowed during scale-up.
    pub scale_max_unavailable: Option<i64>,
    /// Updates paused.
    pub paused: bool,
}

/// What to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Pods to create on the current revision.
    pub create_current: usize,
    /// Pods to create on the update revision.
    pub create_update: usize,
    /// Pods to delete (best first, as given).
    pub delete: Vec<String>,
    /// Pods to move to the update revision (in place or by recreation).
    pub update: Vec<String>,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.create_current == 0
            && self.create_update == 0
            && self.delete.is_empty()
            && self.update.is_empty()
    }
}

/// Plans one reconcile. `pods` are the active pods, `delete_order` and `update_order`
/// give pod names in the order to delete them (first first) and update them.
pub fn plan(limits: &Limits, pods: &[PodInfo], delete_order: &[String], update_order: &[String]) -> Plan {
    let r = limits.replicas.max(0);
    let p = limits.partition.clamp(0, r);
    let n = pods.len() as i64;
    let unavailable = pods.iter().filter(|x| !x.available).count() as i64;
    let doomed: Vec<&PodInfo> = pods.iter().filter(|x| x.specified_delete || x.preparing_delete).collect();
    let keep = || pods.iter().filter(|x| !x.specified_delete && !x.preparing_delete);
    let updated = keep().filter(|x| x.updated).count() as i64;
    let old = keep().filter(|x| !x.updated).count() as i64;
    let need_update = ((r - p) - updated).max(0);
    let surge =
        if limits.paused { 0 } else { limits.max_surge.min((doomed.len() as i64).max(need_update)).max(0) };
    let total = r + surge;
    let kept = updated + old;
    let mut out = Plan::default();

    // Scale: first the pods marked for deletion, then what is missing or extra.
    let rank = |name: &str| delete_order.iter().position(|n| n == name).unwrap_or(usize::MAX);
    let mut delete_budget = (limits.max_unavailable + n - r - unavailable).max(0);
    let mut doomed_sorted = doomed.clone();
    doomed_sorted.sort_by_key(|x| rank(&x.name));
    for x in doomed_sorted {
        if x.preparing_delete {
            continue; // deleted once its hooks let go
        }
        if !x.available {
            out.delete.push(x.name.clone());
        } else if delete_budget > 0 {
            delete_budget -= 1;
            out.delete.push(x.name.clone());
        }
    }
    if kept < total {
        let mut deficit = total - kept;
        if let Some(max) = limits.scale_max_unavailable {
            deficit = deficit.min((max - unavailable).max(0));
        }
        let current = deficit.min((p - old).max(0));
        out.create_current = current as usize;
        out.create_update = (deficit - current) as usize;
    } else if kept > total {
        let excess = kept - total;
        let from_old = excess.min((old - p).max(0));
        let mut by_rank: Vec<&PodInfo> = keep().collect();
        by_rank.sort_by_key(|x| rank(&x.name));
        let olds = by_rank.iter().filter(|x| !x.updated).take(from_old as usize);
        let news = by_rank.iter().filter(|x| x.updated).take((excess - from_old) as usize);
        for x in olds.chain(news) {
            if !x.available {
                out.delete.push(x.name.clone());
            } else if delete_budget > 0 {
                delete_budget -= 1;
                out.delete.push(x.name.clone());
            }
        }
    }
    if !out.is_empty() || limits.paused {
        return out;
    }

    // Update: old pods, in update order, within the unavailability budget.
    let budget = (limits.max_unavailable + n - r - unavailable).max(0);
    let mut left = need_update;
    let mut budget_left = budget;
    for name in update_order {
        if left == 0 {
            break;
        }
        let Some(x) = keep().find(|x| &x.name == name && !x.updated) else { continue };
        if x.available {
            if budget_left == 0 {
                continue;
            }
            budget_left -= 1;
        }
        out.update.push(x.name.clone());
        left -= 1;
    }
    out
}

#[cfg(test)]
mod tests;
