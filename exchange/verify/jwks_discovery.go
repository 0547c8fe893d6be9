package verify

import (
	"github.com/tokengate/tokengate/internal/oauthclient"
)

// jwksMetadataURLs is oauthclient.MetadataURLs, named as jwks_test.go's
// table still names it; internal/oauthclient's tests pin the same table,
// so this line can go when that test moves.
var jwksMetadataURLs = oauthclient.MetadataURLs
