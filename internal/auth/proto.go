package auth

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
)

// KeyToProto converts an api_keys row for the API. The secret's hash never
// leaves the server.
func KeyToProto(k dbsqlc.ApiKey) *quartersv1.ApiKey {
	p := &quartersv1.ApiKey{
		Id:           k.ID.String(),
		Name:         k.Name,
		Role:         ParseRole(k.Role),
		Prefix:       k.Prefix,
		CreateTime:   timestamppb.New(k.CreateTime),
		ExpireTime:   optionalTime(k.ExpireTime),
		RevokeTime:   optionalTime(k.RevokeTime),
		LastUsedTime: optionalTime(k.LastUsedTime),
	}
	if k.CreatedBy != nil {
		p.CreatedBy = k.CreatedBy.String()
	}
	return p
}

func optionalTime(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}
