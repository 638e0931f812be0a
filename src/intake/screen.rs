//! Past capacity, new contacts are screened here before the writer: admission control
//! decides which to refuse by their channel and their customer's tier, with reads
//! beside the store's writer rather than in its transaction, so a refusal is answered
//! at once instead of after waiting in line for the commit it will never need. What is
//! admitted goes on to the writer as any contact does; nothing refused was written.
//!
//! Contacts reach the screen only while admission control sheds load: otherwise they go
//! straight to the writer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use switchboard_contract::IntakeError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{next_jobs, refused_by_line, Job};
use crate::admission::Admission;
use crate::config::TierSettings;
use crate::customers::tier;
use crate::store::{customers, interactions, now_ms, Store};

const DAY_MS: i64 = 86_400_000;

/// The screening task's state.
pub(super) struct Screen {
    store: Store,
    tiers: TierSettings,
    admission: Arc<Admission>,
    /// The writer's line, where admitted contacts go on.
    writer: mpsc::Sender<Job>,
    max_batch: usize,
}

impl Screen {
    pub(super) fn new(
        store: Store,
        tiers: TierSettings,
        admission: Arc<Admission>,
        writer: mpsc::Sender<Job>,
        max_batch: usize,
    ) -> Screen {
        Screen {
            store,
            tiers,
            admission,
            writer,
            max_batch,
        }
    }

    /// Screens what arrives until `shutdown`; then hands the writer what was already
    /// submitted (it commits what it was handed, and refuses the rest).
    pub(super) async fn run(self, mut jobs: mpsc::Receiver<Job>, shutdown: CancellationToken) {
        let mut batch = Vec::new();
        while next_jobs(&mut jobs, &mut batch, self.max_batch, &shutdown).await {
            let group = std::mem::take(&mut batch);
            let refused = match self.refusals(&group).await {
                Ok(r) => r,
                Err(e) => {
                    // Not screened, not refused: the writer commits them, or answers
                    // each as the store lets it.
                    tracing::warn!(error = %e, contacts = group.len(),
                        "Could not read customers' tiers to screen new contacts; admitting them");
                    HashSet::new()
                }
            };
            for (i, job) in group.into_iter().enumerate() {
                if refused.contains(&i) {
                    job.answer(Err(IntakeError::Overloaded {
                        retry_after_secs: self.admission.retry_after_secs(),
                    }));
                } else {
                    self.hand_on(job);
                }
            }
        }
    }

    /// Admitted: on to the writer's line, or refused as busy when that line is full.
    fn hand_on(&self, job: Job) {
        if let Err(e) = self.writer.try_send(job) {
            let (job, error) = refused_by_line(e);
            job.answer(Err(error));
        }
    }

    /// The contacts of this group admission control refuses, by the tier their customer
    /// has now (found by identity; one not known yet has the default tier) and their
    /// channel. Contacts already taken (a retry) go on to be answered as before, never
    /// refused. Three reads for the whole group, none in the writer's transaction.
    async fn refusals(&self, jobs: &[Job]) -> Result<HashSet<usize>, sqlx::Error> {
        let mut conn = self.store.pool().acquire().await?;
        let keys: Vec<&str> = jobs
            .iter()
            .map(|j| j.new.idempotency_key.as_str())
            .collect();
        let known: HashSet<(String, String)> = interactions::by_keys(&mut conn, &keys)
            .await?
            .into_iter()
            .map(|r| (r.channel, r.idempotency_key))
            .collect();
        let mut identities: Vec<_> = jobs
            .iter()
            .flat_map(|j| j.identities.iter().cloned())
            .collect();
        identities.sort();
        identities.dedup();
        let owner: HashMap<_, String> = customers::owners(&mut conn, &identities)
            .await?
            .into_iter()
            .collect();
        let customer_of: Vec<Option<Option<&String>>> = jobs
            .iter()
            .map(|j| {
                let k = (
                    j.new.channel.as_str().to_string(),
                    j.new.idempotency_key.clone(),
                );
                (!known.contains(&k)).then(|| j.identities.iter().find_map(|id| owner.get(id)))
            })
            .collect();
        let mut ids: Vec<String> = customer_of
            .iter()
            .filter_map(|c| c.flatten().cloned())
            .collect();
        ids.sort();
        ids.dedup();
        let now = now_ms();
        let window_start = now - i64::from(self.tiers.window_days) * DAY_MS;
        let tiers: HashMap<String, String> = if ids.is_empty() {
            HashMap::new()
        } else {
            customers::with_value_data(&mut conn, &ids, window_start)
                .await?
                .into_iter()
                .map(|(c, v)| (c.id, tier::decide(&self.tiers, &v, now).tier))
                .collect()
        };
        let mut refused = HashSet::new();
        for (i, (job, customer)) in jobs.iter().zip(customer_of).enumerate() {
            let Some(customer) = customer else { continue };
            let tier = customer
                .and_then(|c| tiers.get(c))
                .map_or(self.admission.default_tier(), String::as_str);
            if self.admission.refuse(job.new.channel, tier) {
                refused.insert(i);
            }
        }
        Ok(refused)
    }
}
