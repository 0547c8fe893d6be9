package sign

import (
	"crypto"
	"path/filepath"
	"testing"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// The key fixtures are oauthtest's, shared with exchange/keys' tests: the
// signer's tests mint with the same keys.
type ltKeys = oauthtest.KeyFixtures

func ltGetKeys(t testing.TB) *ltKeys { return oauthtest.Keys(t) }

func ltThumbprint(t testing.TB, pub crypto.PublicKey) string { return oauthtest.Thumbprint(t, pub) }

// ltWrite writes data to a new file in a test folder and returns its path.
func ltWrite(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	oauthtest.WriteFile(t, p, data)
	return p
}

type ltFormat = oauthtest.KeyFormat

func ltFormats(t testing.TB) []ltFormat { return oauthtest.KeyFormats(t) }

// ltOpaqueSigner hides the concrete key type, like an HSM or KMS signer.
type ltOpaqueSigner struct{ crypto.Signer }

// ltLyingSigner claims one public key but signs with another.
type ltLyingSigner struct {
	crypto.Signer
	pub crypto.PublicKey
}

func (s ltLyingSigner) Public() crypto.PublicKey { return s.pub }
