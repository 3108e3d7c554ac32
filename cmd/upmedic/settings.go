package main

import (
	"fmt"
	"reflect"

	"github.com/upmedic/upmedic/admin"
)

// configInEffect lists every variable with the value in effect, given or
// default, for the admin API's status page and /status. An empty value
// stays empty (UPMEDIC_ADMIN_LISTEN= disables, UPMEDIC_HEALTH_PATH= probes
// by connecting only).
func configInEffect(cfg *Config) []admin.ConfigValue {
	v := reflect.ValueOf(cfg).Elem()
	var out []admin.ConfigValue
	for _, f := range configFields() {
		out = append(out, admin.ConfigValue{Name: f.Var, Value: fmt.Sprint(v.FieldByName(f.Field).Interface())})
	}
	return out
}
