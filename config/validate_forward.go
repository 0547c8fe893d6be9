package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseTrustedProxy parses one server.trusted_proxies entry: a CIDR
// ("10.0.0.0/8") or a single address ("192.168.1.7", a /32 or /128). An
// IPv4-mapped IPv6 address is taken as the IPv4 address it maps; zones and
// host bits set in a CIDR are refused, since both hint at a mistake.
func ParseTrustedProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%s is not a CIDR: write it like 10.0.0.0/8 or fd00::/8", quote(s))
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%s has host bits set: write the network, %s, or a single address", quote(s), p.Masked())
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%s is not an IP address or a CIDR: write it like 192.168.1.7 or 10.0.0.0/8", quote(s))
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// trustedProxies checks server.trusted_proxies.
func (v *validator) trustedProxies() {
	const p = "server.trusted_proxies"
	seen := map[netip.Prefix]int{}
	for i, s := range v.c.Server.TrustedProxies {
		path := indexPath(p, i)
		pfx, err := ParseTrustedProxy(s)
		switch first, dup := seen[pfx]; {
		case err != nil:
			v.add(path, err.Error())
		case pfx.Bits() == 0:
			v.addf(path, "%s trusts every address: any client could then set X-Forwarded-For and the DPoP htu; "+
				"list only the addresses of your load balancers or ingress", quote(s))
		case dup:
			v.addf(path, "%s is also trusted_proxies[%d]: list each network once", quote(s), first)
		default:
			seen[pfx] = i
		}
	}
}
