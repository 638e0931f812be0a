//! Rings: which agents may take an interaction, and from when. An interaction's ring plan
//! (by tier and topic) lists rings of agents, innermost first, each opening after the
//! timeouts before it; a ring that could hold nobody for it — an owner ring without an
//! owner, or a ring no logged-in agent fits — is passed over at once.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Serialize;

use super::policy::{AgentView, Presence, WaitingInteraction};
use super::rules::{Ring, Rules};

/// An agent as a ring sees them: who, how senior, with which skills, logged in or not.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// The agent's id.
    pub id: &'a str,
    /// Seniority.
    pub level: u8,
    /// Skills and teams.
    pub skills: &'a [String],
    /// Logged in (available or away).
    pub logged_in: bool,
}

impl<'a> From<&'a AgentView> for Member<'a> {
    fn from(a: &'a AgentView) -> Member<'a> {
        Member {
            id: &a.id,
            level: a.level,
            skills: &a.skills,
            logged_in: a.presence != Presence::Offline,
        }
    }
}

/// Which rings the logged-in agents could fill, worked out as asked during one call of
/// the policy (a ring's answer depends only on the agents, and on the interaction's
/// owner or topic where the ring names them).
pub struct Staffed<'a> {
    /// The agents, as the policy sees them…
    views: &'a [AgentView],
    /// …or as members (the logged-in ones).
    members: Vec<Member<'a>>,
    known: RefCell<HashMap<(usize, Option<String>), bool>>,
}

impl<'a> Staffed<'a> {
    /// Over these agents (the offline ones count as not there).
    pub fn new(agents: &'a [AgentView]) -> Staffed<'a> {
        Staffed {
            views: agents,
            members: Vec::new(),
            known: RefCell::default(),
        }
    }

    /// Over these members.
    pub fn of(members: impl IntoIterator<Item = Member<'a>>) -> Staffed<'a> {
        Staffed {
            views: &[],
            members: members.into_iter().filter(|m| m.logged_in).collect(),
            known: RefCell::default(),
        }
    }

    /// Could any logged-in agent (available or away) be in `ring` for `w`?
    pub fn could_fill(&self, ring: &Ring, w: &WaitingInteraction) -> bool {
        // The ring's address names it for the length of the call; what of the
        // interaction it depends on completes the name.
        let about = match (ring.owner, ring.topic_skill) {
            (true, _) => w.owner.clone(),
            (false, true) => w.topic.clone(),
            (false, false) => None,
        };
        let name = (ring as *const Ring as usize, about);
        if let Some(known) = self.known.borrow().get(&name) {
            return *known;
        }
        let filled = self.members.iter().any(|m| fits(ring, m, w))
            || self
                .views
                .iter()
                .any(|a| a.presence != Presence::Offline && in_ring(ring, a, w));
        self.known.borrow_mut().insert(name, filled);
        filled
    }
}

/// A ring of an interaction's plan passed over at once, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassedOver {
    /// Its place in the plan (0 is innermost).
    pub step: usize,
    /// Why: it could hold nobody for this interaction.
    pub reason: &'static str,
}

/// Why a ring of the plan is passed over for `w`, if it is. The widest ring is kept even
/// when nobody could fill it now, so the interaction waits for whoever logs in.
fn passed(
    step: usize,
    last: usize,
    ring: &Ring,
    w: &WaitingInteraction,
    staffed: &Staffed<'_>,
) -> Option<&'static str> {
    if ring.owner && w.owner.is_none() {
        Some("the customer has no account manager")
    } else if ring.topic_skill && w.topic.is_none() {
        Some("the interaction has no topic")
    } else if step != last && !staffed.could_fill(ring, w) {
        Some("no agent of this ring is logged in")
    } else {
        None
    }
}

/// The interaction's rings, less those that can match nobody for it (an owner ring when
/// the customer has no owner, a topic ring when it has no topic) and those no logged-in
/// agent could fill (no agent of that level or skill, or the owner, is logged in): those
/// are passed over at once instead of holding it for their timeout.
pub fn rings_of<'r>(
    w: &WaitingInteraction,
    rules: &'r Rules,
    staffed: &Staffed<'_>,
) -> Vec<&'r Ring> {
    let steps = rules.rings_for(&w.tier, w.topic.as_deref());
    let last = steps.len().saturating_sub(1);
    steps
        .iter()
        .enumerate()
        .filter(|(i, r)| passed(*i, last, r, w, staffed).is_none())
        .map(|(_, r)| r)
        .collect()
}

/// The rings of the interaction's plan passed over, for the explanation of a decision.
pub fn passed_over(
    w: &WaitingInteraction,
    rules: &Rules,
    staffed: &Staffed<'_>,
) -> Vec<PassedOver> {
    let steps = rules.rings_for(&w.tier, w.topic.as_deref());
    let last = steps.len().saturating_sub(1);
    steps
        .iter()
        .enumerate()
        .filter_map(|(step, r)| {
            let reason = passed(step, last, r, w, staffed)?;
            Some(PassedOver { step, reason })
        })
        .collect()
}

/// How many rings are open after `waited_ms`: the first at once, each next one when the
/// timeouts before it have passed.
pub fn rings_open(rings: &[&Ring], waited_ms: i64) -> usize {
    let mut until_ms = 0i64;
    for (i, ring) in rings.iter().enumerate() {
        match ring.timeout_secs {
            Some(t) if i + 1 < rings.len() => {
                until_ms += (t as i64) * 1000;
                if waited_ms < until_ms {
                    return i + 1;
                }
            }
            _ => return rings.len(),
        }
    }
    rings.len()
}

/// Is the agent in this ring for this interaction?
pub(super) fn in_ring(ring: &Ring, a: &AgentView, w: &WaitingInteraction) -> bool {
    fits(ring, &Member::from(a), w)
}

/// Is the member in this ring for this interaction?
fn fits(ring: &Ring, m: &Member<'_>, w: &WaitingInteraction) -> bool {
    (!ring.owner || w.owner.as_deref() == Some(m.id))
        && ring.min_level.is_none_or(|l| m.level >= l)
        && ring.skills.iter().all(|s| m.skills.contains(s))
        && (!ring.topic_skill || w.topic.as_ref().is_some_and(|t| m.skills.contains(t)))
}
