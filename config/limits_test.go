package config

import (
	"slices"
	"testing"
)

// TestAlgorithmRulesAreOneList: the issuer and DPoP defaults are the one
// asymmetric list (in their documented orders), the signing algorithms are
// among them, and the checks agree with the lists without allocating.
func TestAlgorithmRulesAreOneList(t *testing.T) {
	all := AsymmetricAlgorithms()
	if got := DefaultAlgorithms(); !slices.Equal(got, all) {
		t.Errorf("DefaultAlgorithms() = %v, want %v", got, all)
	}
	dpop := DefaultDPoPAlgorithms()
	if !slices.Equal(slices.Sorted(slices.Values(dpop)), slices.Sorted(slices.Values(all))) {
		t.Errorf("DefaultDPoPAlgorithms() = %v, want the set %v", dpop, all)
	}
	for _, a := range all {
		if !IsAsymmetricAlgorithm(a) {
			t.Errorf("IsAsymmetricAlgorithm(%q) = false", a)
		}
	}
	for _, a := range SigningAlgorithms() {
		if !IsSigningAlgorithm(a) || !IsAsymmetricAlgorithm(a) {
			t.Errorf("signing algorithm %q is not accepted by the checks", a)
		}
	}
	for _, a := range []string{"none", "HS256", "es256", "", "ES384x"} {
		if IsAsymmetricAlgorithm(a) || IsSigningAlgorithm(a) {
			t.Errorf("%q accepted", a)
		}
	}
	if IsSigningAlgorithm("ES384") {
		t.Error("ES384 accepted as a signing algorithm")
	}
	if n := testing.AllocsPerRun(100, func() { _ = IsAsymmetricAlgorithm("EdDSA") }); n != 0 {
		t.Errorf("IsAsymmetricAlgorithm allocates %v times", n)
	}
}
