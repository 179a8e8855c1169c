package db

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Without help, pgx scans a uuid column into a uuid.UUID through
// database/sql: it formats the 16 binary bytes as text and uuid.Scan
// parses them back, two allocations and a parse per value (6 % of a
// ListDocuments call under load, issue 10). uuidCodec copies the bytes
// instead, and writes uuid.UUID parameters as their 16 bytes.

// uuidCodec is pgtype.UUIDCodec that also scans and encodes uuid.UUID
// (and *uuid.UUID, for nullable columns, through pgx's pointer wrapper)
// in the binary format directly.
type uuidCodec struct{ pgtype.UUIDCodec }

func (c uuidCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*uuid.UUID); ok && format == pgtype.BinaryFormatCode {
		return scanBinaryUUID{}
	}
	return c.UUIDCodec.PlanScan(m, oid, format, target)
}

func (c uuidCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(uuid.UUID); ok && format == pgtype.BinaryFormatCode {
		return encodeBinaryUUID{}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

type scanBinaryUUID struct{}

func (scanBinaryUUID) Scan(src []byte, target any) error {
	if src == nil {
		return fmt.Errorf("cannot scan NULL into %T", target)
	}
	if len(src) != 16 {
		return fmt.Errorf("invalid length for uuid: %d", len(src))
	}
	copy(target.(*uuid.UUID)[:], src)
	return nil
}

type encodeBinaryUUID struct{}

func (encodeBinaryUUID) Encode(value any, buf []byte) ([]byte, error) {
	u := value.(uuid.UUID)
	return append(buf, u[:]...), nil
}

// configure sets up every new connection of cfg's pool: uuidCodec for
// uuid and uuid[] (whose element plans come from the element type's
// codec), and, with prepare, the prepared COMMIT (tx.go). The prepare
// costs one round trip per connection, at connect time, not per request.
func configure(cfg *pgxpool.Config, prepare bool) {
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		RegisterTypes(conn.TypeMap())
		if prepare {
			if _, err := conn.Prepare(ctx, commitStatement, "commit"); err != nil {
				return fmt.Errorf("prepare commit: %w", err)
			}
		}
		if after != nil {
			return after(ctx, conn)
		}
		return nil
	}
}

// RegisterTypes installs Quarters' codecs (binary uuid.UUID) in m. Open
// does it for the server's pool; call it on other connections' maps to get
// the same scanning.
func RegisterTypes(m *pgtype.Map) {
	t := &pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}}
	m.RegisterType(t)
	m.RegisterType(&pgtype.Type{Name: "_uuid", OID: pgtype.UUIDArrayOID, Codec: &pgtype.ArrayCodec{ElementType: t}})
}
