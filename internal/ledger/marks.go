package ledger

// Marks are who cut a launch's instance off its data, when and why: `storecrypt revoke`
// writes the revoked_* attributes and resume removes them; shred's stay for good. They
// sit at the top level of Item's JSON, as they do in the item.
type Marks struct {
	RevokedAt      string `json:"revoked_at,omitempty"`
	RevokedBy      string `json:"revoked_by,omitempty"`
	RevokedReason  string `json:"revoked_reason,omitempty"`
	ShreddedAt     string `json:"shredded_at,omitempty"`
	ShreddedBy     string `json:"shredded_by,omitempty"`
	ShreddedReason string `json:"shredded_reason,omitempty"`
}
