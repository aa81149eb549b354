//! The history checked against the final state read from the leader: what was
//! acknowledged stays done, what was refused changed nothing, no read went back in time,
//! and every user's events are numbered without gaps.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::workload::{Entry, Op, Outcome};

/// What the leader holds for the run's users at the end.
#[derive(Debug, Default)]
pub struct FinalState {
    /// Each user's authenticators.
    pub authenticators: HashMap<String, HashSet<String>>,
    /// Each user's events in order: (sequence, type, the authenticator it names).
    pub events: BTreeMap<String, Vec<(i64, String, Option<String>)>>,
}

const REMOVED: &str = "user.human.mfa.otp.sms.removed";

#[derive(Debug)]
pub struct Check {
    pub name: &'static str,
    pub examined: usize,
    pub violations: Vec<String>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Every check, in the order the report gives them. `redis_rounds` are the rounds whose
/// fault was Redis's alone: nothing may fail in them.
pub fn all(history: &[Entry], state: &FinalState, redis_rounds: &HashSet<usize>) -> Vec<Check> {
    let mut by_user: HashMap<&str, Vec<&Entry>> = HashMap::new();
    for entry in history {
        by_user.entry(entry.op.user()).or_default().push(entry);
    }
    let of = |user: &str| by_user.get(user).map_or(&[][..], Vec::as_slice);
    // Authenticator ids are unique in the instance: removals by the id alone.
    let mut removals: HashMap<&str, Vec<&Entry>> = HashMap::new();
    for entry in history {
        if let Op::Remove { otp, .. } = &entry.op {
            removals.entry(otp).or_default().push(entry);
        }
    }
    let removals_of = |otp: &str| removals.get(otp).map_or(&[][..], Vec::as_slice).iter().copied();
    let held = |user: &str, otp: &str| state.authenticators.get(user).is_some_and(|s| s.contains(otp));
    let removed_events = |user: &str, otp: &str| {
        state.events.get(user).map_or(0, |events| {
            events.iter().filter(|(_, kind, named)| kind == REMOVED && named.as_deref() == Some(otp)).count()
        })
    };

    let mut acknowledged =
        Check { name: "every removal answered 200 is gone, with its event", examined: 0, violations: vec![] };
    let mut once = Check { name: "no authenticator is removed twice", examined: 0, violations: vec![] };
    let mut successes: HashMap<(&str, &str), usize> = HashMap::new();
    for entry in history {
        if let (Op::Remove { user, otp }, Outcome::Ok(_)) = (&entry.op, &entry.outcome) {
            acknowledged.examined += 1;
            if held(user, otp) {
                acknowledged.violations.push(format!("{user}/{otp}: answered 200 at {:.3}s, still held", entry.end));
            }
            if removed_events(user, otp) != 1 {
                acknowledged.violations.push(format!("{user}/{otp}: {} removal events", removed_events(user, otp)));
            }
            *successes.entry((user, otp)).or_default() += 1;
        }
    }
    for ((user, otp), count) in &successes {
        once.examined += 1;
        if *count > 1 {
            once.violations.push(format!("{user}/{otp}: {count} removals answered 200"));
        }
    }

    let mut kept = Check {
        name: "no authenticator is gone that only refused removals (4xx) tried to remove",
        examined: 0,
        violations: vec![],
    };
    for entry in history {
        let (Op::Add { user, .. }, Outcome::Ok(body)) = (&entry.op, &entry.outcome) else { continue };
        let Some(otp) = body["otpSmsId"].as_str() else { continue };
        kept.examined += 1;
        let may_have_removed =
            removals_of(otp).any(|r| matches!(r.outcome, Outcome::Ok(_)) || r.outcome.indeterminate());
        if !held(user, otp) && !may_have_removed {
            kept.violations
                .push(format!("{user}/{otp}: added at {:.3}s, gone, and no removal could have landed", entry.end));
        }
    }

    let mut fresh = Check {
        name: "no GetUser shows an authenticator removed before it began, or misses one added before it began",
        examined: 0,
        violations: vec![],
    };
    for get in history {
        let (Op::Get { user }, Outcome::Ok(body)) = (&get.op, &get.outcome) else { continue };
        fresh.examined += 1;
        let listed: HashSet<&str> = body["user"]["authenticators"]["otpSms"]
            .as_array()
            .map(|list| list.iter().filter_map(|a| a["otpSmsId"].as_str()).collect())
            .unwrap_or_default();
        for earlier in of(user).iter().filter(|e| e.end < get.start) {
            match (&earlier.op, &earlier.outcome) {
                (Op::Remove { otp, .. }, Outcome::Ok(_)) if listed.contains(otp.as_str()) => {
                    fresh.violations.push(format!(
                        "{user}/{otp}: removed at {:.3}s, shown by a GetUser begun at {:.3}s",
                        earlier.end, get.start
                    ));
                }
                (Op::Add { .. }, Outcome::Ok(added)) => {
                    let Some(otp) = added["otpSmsId"].as_str() else { continue };
                    // Unless a removal of it may have landed before the read ended.
                    let removable = removals_of(otp).any(|r| r.start < get.end);
                    if !listed.contains(otp) && !removable {
                        fresh.violations.push(format!(
                            "{user}/{otp}: added at {:.3}s, missing from a GetUser begun at {:.3}s",
                            earlier.end, get.start
                        ));
                    }
                }
                _ => {}
            }
        }
    }

    let mut numbering = Check {
        name: "every user's events are numbered 1, 2, 3… without gaps or duplicates",
        examined: 0,
        violations: vec![],
    };
    for (user, events) in &state.events {
        numbering.examined += 1;
        let sequences: Vec<i64> = events.iter().map(|(sequence, _, _)| *sequence).collect();
        let expected: Vec<i64> = (1..=i64::try_from(sequences.len()).unwrap_or(i64::MAX)).collect();
        if sequences != expected {
            numbering.violations.push(format!("{user}: {sequences:?}"));
        }
    }

    let mut contract =
        Check { name: "every answer is in the contract (no 500)", examined: history.len(), violations: vec![] };
    for entry in history {
        if let Outcome::OutsideContract(status, body) = &entry.outcome {
            contract.violations.push(format!("{:?} at {:.3}s: {status} {body}", entry.op, entry.start));
        }
    }

    // Refusals (a removal that lost a race, 404; a user that kept changing, 409) are the
    // workload's own, and answered with or without Redis.
    let mut redis = Check {
        name: "while the Redis master is killed, no call is unavailable or unanswered",
        examined: 0,
        violations: vec![],
    };
    for entry in history.iter().filter(|e| redis_rounds.contains(&e.round)) {
        redis.examined += 1;
        if !matches!(entry.outcome, Outcome::Ok(_) | Outcome::Refused(_)) {
            redis.violations.push(format!("{:?} at {:.3}s: {}", entry.op, entry.start, entry.outcome.kind()));
        }
    }

    vec![acknowledged, once, kept, fresh, numbering, contract, redis]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(op: Op, start: f64, end: f64, outcome: Outcome) -> Entry {
        Entry { round: 0, op, start, end, outcome }
    }

    fn add(otp: &str, start: f64, end: f64) -> Entry {
        let op = Op::Add { user: "u".into(), phone: format!("+41790000{otp}") };
        entry(op, start, end, Outcome::Ok(json!({"otpSmsId": otp})))
    }

    fn remove(otp: &str, start: f64, end: f64, outcome: Outcome) -> Entry {
        entry(Op::Remove { user: "u".into(), otp: otp.into() }, start, end, outcome)
    }

    fn get(listed: &[&str], start: f64, end: f64) -> Entry {
        let otps: Vec<_> = listed.iter().map(|o| json!({"otpSmsId": o})).collect();
        entry(
            Op::Get { user: "u".into() },
            start,
            end,
            Outcome::Ok(json!({"user": {"authenticators": {"otpSms": otps}}})),
        )
    }

    /// The user holds `held`; its events are an add per id in `added` and a removal per
    /// id in `removed`, numbered from 1.
    fn state(held: &[&str], added: &[&str], removed: &[&str]) -> FinalState {
        let mut state = FinalState::default();
        state.authenticators.insert("u".into(), held.iter().map(|o| (*o).to_owned()).collect());
        let kinds =
            added.iter().map(|o| ("user.human.mfa.otp.sms.added", o)).chain(removed.iter().map(|o| (REMOVED, o)));
        let events = (1..).zip(kinds).map(|(n, (kind, otp))| (n, kind.to_owned(), Some((*otp).to_owned()))).collect();
        state.events.insert("u".into(), events);
        state
    }

    fn failed(history: &[Entry], state: &FinalState) -> Vec<&'static str> {
        all(history, state, &HashSet::from([1])).into_iter().filter(|c| !c.passed()).map(|c| c.name).collect()
    }

    #[test]
    fn a_consistent_history_passes_every_check() {
        let history = [
            add("a", 0.0, 0.1),
            add("b", 0.2, 0.3),
            get(&["a", "b"], 0.4, 0.5),
            remove("a", 0.6, 0.7, Outcome::Ok(json!({}))),
            remove("a", 0.65, 0.75, Outcome::Refused(404)),
            get(&["b"], 0.8, 0.9),
            remove("b", 1.0, 1.1, Outcome::Unavailable(503)),
        ];
        // b's removal was unanswered: gone or held, both pass.
        assert_eq!(failed(&history, &state(&["b"], &["a", "b"], &["a"])), Vec::<&str>::new());
        assert_eq!(failed(&history, &state(&[], &["a", "b"], &["a", "b"])), Vec::<&str>::new());
    }

    #[test]
    fn an_acknowledged_removal_that_did_not_land_is_caught() {
        let history = [add("a", 0.0, 0.1), remove("a", 0.2, 0.3, Outcome::Ok(json!({})))];
        let failures = failed(&history, &state(&["a"], &["a"], &[]));
        assert_eq!(failures, ["every removal answered 200 is gone, with its event"]);
    }

    #[test]
    fn two_acknowledged_removals_of_one_authenticator_are_caught() {
        let history = [
            add("a", 0.0, 0.1),
            remove("a", 0.2, 0.3, Outcome::Ok(json!({}))),
            remove("a", 0.2, 0.4, Outcome::Ok(json!({}))),
        ];
        let failures = failed(&history, &state(&[], &["a"], &["a"]));
        assert_eq!(failures, ["no authenticator is removed twice"]);
    }

    #[test]
    fn an_authenticator_gone_after_only_refused_removals_is_caught() {
        let history = [add("a", 0.0, 0.1), remove("a", 0.2, 0.3, Outcome::Refused(403))];
        let failures = failed(&history, &state(&[], &["a"], &["a"]));
        assert_eq!(failures, ["no authenticator is gone that only refused removals (4xx) tried to remove"]);
    }

    #[test]
    fn a_read_that_shows_a_removed_authenticator_or_misses_an_added_one_is_caught() {
        let stale = [add("a", 0.0, 0.1), remove("a", 0.2, 0.3, Outcome::Ok(json!({}))), get(&["a"], 0.4, 0.5)];
        let missing = [add("a", 0.0, 0.1), get(&[], 0.2, 0.3)];
        let name = "no GetUser shows an authenticator removed before it began, or misses one added before it began";
        assert_eq!(failed(&stale, &state(&[], &["a"], &["a"])), [name]);
        assert_eq!(failed(&missing, &state(&["a"], &["a"], &[])), [name]);
        // A read overlapping the removal may show it either way.
        let overlapping = [add("a", 0.0, 0.1), remove("a", 0.2, 0.5, Outcome::Ok(json!({}))), get(&["a"], 0.3, 0.4)];
        assert_eq!(failed(&overlapping, &state(&[], &["a"], &["a"])), Vec::<&str>::new());
    }

    #[test]
    fn gaps_and_duplicates_in_the_numbering_are_caught() {
        let mut gap = state(&["a"], &["a"], &[]);
        gap.events.get_mut("u").expect("events")[0].0 = 2;
        assert_eq!(failed(&[], &gap), ["every user's events are numbered 1, 2, 3… without gaps or duplicates"]);
    }

    #[test]
    fn a_500_and_a_failure_while_redis_fails_over_are_caught() {
        let mut failing = remove("a", 0.2, 0.3, Outcome::OutsideContract(500, "{}".into()));
        failing.round = 1;
        let failures = failed(&[add("a", 0.0, 0.1), failing], &state(&["a"], &["a"], &[]));
        assert_eq!(
            failures,
            [
                "every answer is in the contract (no 500)",
                "while the Redis master is killed, no call is unavailable or unanswered"
            ]
        );
    }
}
