//! The [`Controller`]'s bookkeeping: editing and removing remotes (saved
//! at once), the settings, the docker CLI's default context, "Test
//! connection" and trusting host keys, importing hosts from `~/.ssh/config`,
//! and the keychain's keys. Connecting and change notification live in the
//! parent module.

use super::*;

impl Controller {
    /// Adds a remote (`original` `None`) or replaces the one called
    /// `original` (possibly renaming it), and saves the config. A connected
    /// remote keeps running with its old settings until reconnected.
    pub fn save_remote(&self, original: Option<&str>, remote: Remote) -> Result<(), DesktopError> {
        let mut inner = self.lock();
        let mut next = inner.config.clone();
        let new_name = remote.name.clone();
        match original {
            Some(old) => next.update_remote(old, remote)?,
            None => next.add_remote(remote)?,
        }
        next.save_to(&self.opts.config_path)?;
        inner.config = next;
        if let Some(old) = original.filter(|o| *o != new_name) {
            if let Some(slot) = inner.slots.remove(old) {
                inner.slots.insert(new_name, slot);
            }
        }
        drop(inner);
        self.bump();
        Ok(())
    }

    /// Disconnects the remote, removes its docker context (restoring the
    /// previous one if it was current) and removes it from the config.
    pub async fn remove_remote(&self, name: &str) -> Result<(), DesktopError> {
        if self.lock().config.remote(name).is_none() {
            return Err(DesktopError::NoSuchRemote(name.to_string()));
        }
        self.disconnect(name).await;
        let was_current = self.is_current_context(name);
        {
            let mut inner = self.lock();
            let mut next = inner.config.clone();
            next.remove_remote(name)?;
            if was_current {
                self.contexts
                    .restore(next.settings.previous_context.as_deref())?;
                next.settings.previous_context = None;
            }
            next.save_to(&self.opts.config_path)?;
            inner.config = next;
            inner.slots.remove(name);
        }
        self.contexts.remove_context(name)?;
        self.reread_context();
        self.bump();
        Ok(())
    }

    /// Runs the step-by-step check of `remote` (which need not be saved).
    pub async fn test_connection(&self, remote: &Remote) -> Vec<Step> {
        probe::test_connection(remote, &self.opts.store, &self.opts.known_hosts).await
    }

    /// Trusts the host key of `host:port`: appended to known_hosts only if
    /// the server offers exactly `fingerprint` now; a changed key is refused.
    pub async fn trust_host_key(
        &self,
        host: &str,
        port: u16,
        fingerprint: &str,
    ) -> Result<(), DesktopError> {
        hostkeys::trust(host, port, fingerprint, &self.opts.known_hosts).await
    }

    /// The settings as saved.
    pub fn settings(&self) -> Settings {
        self.lock().config.settings.clone()
    }

    /// The settings the window shows, with `DOCKER_HOST` if it is set.
    pub fn settings_view(&self) -> SettingsView {
        SettingsView::new(&self.settings(), context::docker_host_override())
    }

    /// Records "start at login" (the app registers the OS autostart itself).
    pub fn set_start_at_login(&self, on: bool) -> Result<(), DesktopError> {
        self.update_settings(|s| s.start_at_login = on)
    }

    /// `Some(name)`: creates `berth-<name>` for the remote's endpoint and makes
    /// it the docker CLI's current context, remembering the non-Berth context
    /// current before; it is made current again whenever the remote connects.
    /// `None`: restores the remembered context (if a Berth one is current).
    pub fn set_default_context(&self, name: Option<&str>) -> Result<(), DesktopError> {
        match name {
            Some(n) => {
                let remote = self
                    .lock()
                    .config
                    .remote(n)
                    .cloned()
                    .ok_or_else(|| DesktopError::NoSuchRemote(n.to_string()))?;
                self.use_context_of(&remote)?;
                self.update_settings(|s| s.default_context = Some(n.to_string()))?;
            }
            None => {
                let previous = self.settings().previous_context;
                if self.current_is_berth() {
                    self.contexts.restore(previous.as_deref())?;
                }
                self.update_settings(|s| {
                    s.default_context = None;
                    s.previous_context = None;
                })?;
            }
        }
        self.reread_context();
        self.bump();
        Ok(())
    }

    /// Drafts of remotes from `~/.ssh/config` not configured yet (not saved).
    pub fn import_ssh_config(&self) -> Result<Vec<Remote>, DesktopError> {
        let path = sshimport::default_ssh_config()?;
        let config = self.lock().config.clone();
        sshimport::import_file(&path, &config)
    }

    /// The keychain's keys (public parts only).
    pub async fn list_keys(&self) -> Result<Vec<PublicKeyInfo>, DesktopError> {
        let store = self.opts.store.clone();
        Ok(keys::blocking(move || keys::list(&*store)).await?)
    }

    /// Generates an ed25519 key in the keychain.
    pub async fn generate_key(
        &self,
        id: &str,
        comment: &str,
    ) -> Result<PublicKeyInfo, DesktopError> {
        let (store, id, comment) = (self.opts.store.clone(), id.to_string(), comment.to_string());
        Ok(keys::blocking(move || keys::generate_ed25519(&*store, &id, &comment)).await?)
    }

    /// Imports a private key into the keychain (decrypted with `passphrase`).
    pub async fn import_key(
        &self,
        id: &str,
        private_key: &str,
        passphrase: Option<&str>,
    ) -> Result<PublicKeyInfo, DesktopError> {
        let store = self.opts.store.clone();
        let id = id.to_string();
        let pem = zeroize::Zeroizing::new(private_key.to_string());
        let pass = passphrase.map(|p| zeroize::Zeroizing::new(p.to_string()));
        Ok(keys::blocking(move || {
            keys::import_private_key(&*store, &id, &pem, pass.as_deref().map(|p| p.as_str()))
        })
        .await?)
    }

    /// Deletes a key from the keychain.
    pub async fn delete_key(&self, id: &str) -> Result<(), DesktopError> {
        let (store, id) = (self.opts.store.clone(), id.to_string());
        Ok(keys::blocking(move || keys::delete(&*store, &id)).await?)
    }

    pub(super) fn update_settings(
        &self,
        f: impl FnOnce(&mut Settings),
    ) -> Result<(), DesktopError> {
        let mut inner = self.lock();
        let mut next = inner.config.clone();
        f(&mut next.settings);
        next.save_to(&self.opts.config_path)?;
        inner.config = next;
        Ok(())
    }

    /// Creates and switches to `berth-<remote>`, remembering a non-Berth previous context.
    pub(super) fn use_context_of(&self, remote: &Remote) -> Result<(), DesktopError> {
        let name = self.contexts.ensure_context(&remote.name, &remote.listen)?;
        let previous = self.contexts.use_context(&name)?;
        self.reread_context();
        if !previous.as_deref().is_some_and(context::is_berth_context) {
            self.update_settings(|s| s.previous_context = previous)?;
        }
        Ok(())
    }

    pub(super) fn current_is_berth(&self) -> bool {
        matches!(self.contexts.current(), Ok(Some(c)) if context::is_berth_context(&c))
    }

    fn is_current_context(&self, name: &str) -> bool {
        matches!(self.contexts.current(), Ok(Some(c)) if c == context::context_name(name))
    }

    /// Recent log lines (kept by [`super::super::activity::layer`]) and the
    /// process's CPU use since the previous call and resident memory.
    pub fn activity(&self) -> super::super::activity::Activity {
        self.usage.activity()
    }
}
