//! Random identifiers and secrets from the operating system's CSPRNG.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use tessera_shared::ids::{CLIENT_ID_PREFIX, CLIENT_ID_RANDOM_LEN, CLIENT_SECRET_LEN, REFRESH_TOKEN_LEN};

use super::CryptoError;

/// Draws random values. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Random {
    rng: SystemRandom,
}

impl Default for Random {
    fn default() -> Self {
        Self::new()
    }
}

impl Random {
    /// Uses the operating system's generator.
    pub fn new() -> Self {
        Self { rng: SystemRandom::new() }
    }

    /// The underlying generator, for signing with ring.
    pub fn rng(&self) -> &SystemRandom {
        &self.rng
    }

    /// `N` random bytes.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the generator fails.
    pub fn bytes<const N: usize>(&self) -> Result<[u8; N], CryptoError> {
        let mut out = [0u8; N];
        self.rng.fill(&mut out).map_err(|_| CryptoError::Random)?;
        Ok(out)
    }

    /// `chars` characters of `[A-Za-z0-9_-]`: base64url of `chars * 6 / 8`
    /// random bytes, so every character carries six full bits.
    fn url_safe(&self, chars: usize) -> Result<String, CryptoError> {
        debug_assert_eq!(chars % 4, 0, "whole base64 quanta only");
        let mut bytes = vec![0u8; chars / 4 * 3];
        self.rng.fill(&mut bytes).map_err(|_| CryptoError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A new client ID: the prefix and 32 random characters (192 bits).
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the generator fails.
    pub fn client_id(&self) -> Result<String, CryptoError> {
        Ok(format!("{CLIENT_ID_PREFIX}{}", self.url_safe(CLIENT_ID_RANDOM_LEN)?))
    }

    /// A new client secret: 40 characters (240 bits).
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the generator fails.
    pub fn client_secret(&self) -> Result<String, CryptoError> {
        self.url_safe(CLIENT_SECRET_LEN)
    }

    /// A new refresh token: 40 characters (240 bits).
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the generator fails.
    pub fn refresh_token(&self) -> Result<String, CryptoError> {
        self.url_safe(REFRESH_TOKEN_LEN)
    }

    /// A JWT ID: 128 random bits, base64url (22 characters).
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the generator fails.
    pub fn jti(&self) -> Result<String, CryptoError> {
        let bytes = JTI_POOL.with(|pool| pool.borrow_mut().take(&self.rng))?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// Bytes drawn from the OS for [`Random::jti`], 256 identifiers at a time.
///
/// Every access token needs a fresh `jti`, and one `getrandom` call per
/// token cost about 2% of throughput. A `jti` is public (it is in the
/// token) and needs only to be unique and unguessable, so handing out
/// slices of a larger draw loses nothing; secrets and refresh tokens are
/// still drawn one by one, so no future secret ever waits in memory.
struct JtiPool {
    bytes: [u8; JTI_POOL_LEN],
    /// Bytes at the front already handed out (and wiped).
    used: usize,
}

const JTI_LEN: usize = 16;
const JTI_POOL_LEN: usize = JTI_LEN * 256;

thread_local! {
    static JTI_POOL: std::cell::RefCell<JtiPool> =
        const { std::cell::RefCell::new(JtiPool { bytes: [0; JTI_POOL_LEN], used: JTI_POOL_LEN }) };
}

impl JtiPool {
    fn take(&mut self, rng: &SystemRandom) -> Result<[u8; JTI_LEN], CryptoError> {
        if self.used + JTI_LEN > JTI_POOL_LEN {
            rng.fill(&mut self.bytes).map_err(|_| CryptoError::Random)?;
            self.used = 0;
        }
        let mut out = [0u8; JTI_LEN];
        let slice = self.bytes.get_mut(self.used..self.used + JTI_LEN).ok_or(CryptoError::Random)?;
        out.copy_from_slice(slice);
        // Handed out once: never again, from this buffer.
        slice.fill(0);
        self.used += JTI_LEN;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::ids::{is_client_id, is_refresh_token};

    #[test]
    fn shapes_match_the_contract() {
        let random = Random::new();
        assert!(is_client_id(&random.client_id().unwrap()));
        assert!(is_refresh_token(&random.refresh_token().unwrap()));
        let secret = random.client_secret().unwrap();
        assert_eq!(secret.len(), 40);
        assert!(tessera_shared::ids::is_url_safe(&secret));
        assert_eq!(random.jti().unwrap().len(), 22);
    }

    #[test]
    fn values_do_not_repeat() {
        let random = Random::new();
        let tokens: std::collections::HashSet<String> = (0..1000).map(|_| random.refresh_token().unwrap()).collect();
        assert_eq!(tokens.len(), 1000);
    }

    /// Past several refills of the pool: every `jti` differs, none is the
    /// wiped (all-zero) part of the buffer.
    #[test]
    fn jtis_do_not_repeat_across_pool_refills() {
        let random = Random::new();
        let count = 256 * 5 + 7;
        let jtis: std::collections::HashSet<String> = (0..count).map(|_| random.jti().unwrap()).collect();
        assert_eq!(jtis.len(), count);
        assert!(!jtis.contains(&URL_SAFE_NO_PAD.encode([0u8; JTI_LEN])));
    }
}
