// Which Portcullis services the generated gateway calls. THE one switch for the whole gateway definition: the
// local bootstrap (envoy/envoy.yaml), the compose bootstrap (envoy/envoy.compose.yaml), the tests and the benchmark
// all read it. Flip a flag to true once the matching Portcullis service is merged, then run `npm run gen:envoy`
// and commit the regenerated files (a test fails while the committed files and this switch disagree).
//
// Rate limiting is always on: its service exists.

export interface PortcullisFilters {
  /** envoy.filters.http.ext_authz → Portcullis Authorization/Check (src/authz). */
  readonly extAuthz: boolean;
  /** envoy.filters.http.ext_proc → Portcullis ExternalProcessor/Process (src/extproc). */
  readonly extProc: boolean;
}

export const ENABLED_FILTERS: PortcullisFilters = Object.freeze({
  extAuthz: true,
  extProc: true,
});

/** Every combination, for tests that must hold whatever the switch says. */
export const ALL_FILTER_COMBINATIONS: readonly PortcullisFilters[] = [
  { extAuthz: false, extProc: false },
  { extAuthz: true, extProc: false },
  { extAuthz: false, extProc: true },
  { extAuthz: true, extProc: true },
];
