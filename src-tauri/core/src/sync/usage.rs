//! Who uses a replica, and the one rule that says when it retires. The
//! manager keeps a [`Usage`] beside each replica in its map and changes it
//! only under that map's lock, so a lookup, a create's answer and a
//! container's removal are judged one at a time. Pure.

use std::collections::BTreeSet;

/// The containers and creates using one replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Containers attached to it (ids), from creates, events and labels.
    containers: BTreeSet<String>,
    /// Creates prepared with it whose answer has not come back yet.
    preparing: usize,
}

/// What happened to a create prepared with the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// The daemon created this container: it uses the replica from now on.
    Created(&'a str),
    /// The daemon refused the create.
    Refused,
    /// The answer never came (the client went away): the container may
    /// exist, so the replica stays until a listing of the containers says.
    Unknown,
}

impl Usage {
    /// A create is being prepared with it: nothing retires it until the
    /// create is answered.
    pub fn prepare(&mut self) {
        self.preparing += 1;
    }

    /// A create prepared with it was answered; `true`: nothing uses the
    /// replica any more, so it retires (a refused create was its only use).
    pub fn answered(&mut self, answer: Answer<'_>) -> bool {
        self.preparing = self.preparing.saturating_sub(1);
        match answer {
            Answer::Created(id) => {
                self.containers.insert(id.to_string());
                false
            }
            Answer::Unknown => false,
            Answer::Refused => self.unused(),
        }
    }

    /// A preparation that failed before any create was sent.
    pub fn prepare_failed(&mut self) {
        self.preparing = self.preparing.saturating_sub(1);
    }

    /// Container `id` uses it.
    pub fn attach(&mut self, id: &str) {
        self.containers.insert(id.to_string());
    }

    /// Container `id` is gone; `true`: it was the last user, so the replica
    /// retires (a create under way keeps it).
    pub fn detach(&mut self, id: &str) -> bool {
        self.containers.remove(id) && self.unused()
    }

    /// Whether container `id` uses it.
    pub fn uses(&self, id: &str) -> bool {
        self.containers.contains(id)
    }

    /// The containers using it, sorted.
    pub fn containers(&self) -> impl Iterator<Item = &String> {
        self.containers.iter()
    }

    fn unused(&self) -> bool {
        self.preparing == 0 && self.containers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy)]
    enum Step {
        Prepare,
        Failed,
        Reply(Answer<'static>),
        Attach(&'static str),
        Detach(&'static str),
    }

    fn run(steps: &[Step]) -> Vec<bool> {
        let mut u = Usage::default();
        steps
            .iter()
            .map(|s| match *s {
                Step::Prepare => {
                    u.prepare();
                    false
                }
                Step::Failed => {
                    u.prepare_failed();
                    false
                }
                Step::Reply(a) => u.answered(a),
                Step::Attach(id) => {
                    u.attach(id);
                    false
                }
                Step::Detach(id) => u.detach(id),
            })
            .collect()
    }

    #[test]
    fn a_replica_retires_exactly_when_its_last_user_goes() {
        use Answer::{Created, Refused, Unknown};
        use Step::*;
        let table: &[(&str, &[Step], &[bool])] = &[
            (
                "created, then removed",
                &[Prepare, Reply(Created("a")), Detach("a")],
                &[false, false, true],
            ),
            (
                "a refused create was its only use",
                &[Prepare, Reply(Refused)],
                &[false, true],
            ),
            (
                "refused while another create is under way",
                &[Prepare, Prepare, Reply(Refused), Reply(Created("a"))],
                &[false, false, false, false],
            ),
            (
                "the last container goes while a create is prepared with it",
                &[
                    Prepare,
                    Reply(Created("a")),
                    Prepare,
                    Detach("a"),
                    Reply(Created("b")),
                ],
                &[false, false, false, false, false],
            ),
            (
                "that create is refused: nothing uses it now",
                &[
                    Prepare,
                    Reply(Created("a")),
                    Prepare,
                    Detach("a"),
                    Reply(Refused),
                ],
                &[false, false, false, false, true],
            ),
            (
                "an unknown answer keeps it",
                &[Prepare, Reply(Unknown)],
                &[false, false],
            ),
            (
                "a container it never had going changes nothing",
                &[Attach("a"), Detach("b")],
                &[false, false],
            ),
            (
                "two containers: the second removal retires",
                &[
                    Attach("a"),
                    Attach("b"),
                    Detach("a"),
                    Detach("b"),
                    Detach("b"),
                ],
                &[false, false, false, true, false],
            ),
            (
                "a failed preparation leaves the users as they were",
                &[Attach("a"), Prepare, Failed, Detach("a")],
                &[false, false, false, true],
            ),
        ];
        for (what, steps, want) in table {
            assert_eq!(run(steps), *want, "{what}");
        }
    }

    #[test]
    fn users_are_listed_sorted() {
        let mut u = Usage::default();
        u.attach("b");
        u.prepare();
        u.answered(Answer::Created("a"));
        assert!(u.uses("a") && u.uses("b") && !u.uses("c"));
        assert_eq!(u.containers().collect::<Vec<_>>(), ["a", "b"]);
    }
}
