package server

import (
	"fmt"
	"slices"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/sign"
	"github.com/tokengate/tokengate/exchange/sts"
	"github.com/tokengate/tokengate/gateway"
)

// buildTxnMinter makes the Transaction Token minter of the exchange mode:
// the local signer's first key, or the STS of exchange.remote. nil when no
// route forwards a Txn-Token.
func buildTxnMinter(p *Process, cfg *config.Config, up *modeUpstream) (gateway.TxnMinter, error) {
	if !slices.ContainsFunc(cfg.Routes, config.Route.ForwardsTxnToken) {
		return nil, nil
	}
	t := cfg.TxnToken
	opts := exchange.TxnOptions{
		TrustDomain: t.TrustDomain, WorkloadID: t.WorkloadID, TTL: t.TTL.D(), ContextClaims: t.ContextClaims,
	}
	switch u := up.upstream.(type) {
	case *sign.Local:
		m, err := sign.NewLocalTxn(sign.LocalTxnOptions{
			TxnOptions: opts, Issuer: cfg.Exchange.Local.Issuer, Keys: u.Keys(), Clock: p.Clock,
		})
		if err != nil {
			return nil, fmt.Errorf("txn_token: %w", err)
		}
		return m, nil
	case *sts.Remote:
		m, err := sts.NewRemoteTxn(u, opts)
		if err != nil {
			return nil, fmt.Errorf("txn_token: %w", err)
		}
		return m, nil
	default:
		return nil, fmt.Errorf("txn_token: exchange mode %q cannot make Transaction Tokens", cfg.Exchange.Mode)
	}
}
