package cache

// KeyIDForTest is the id of the key that encrypts this tier's new values.
func (r *Redis) KeyIDForTest() uint32 { return r.keys.ActiveKeyID() }
