// Which kernel ISAs the checks ran on, and the claim of which they must run on (see SelfTest.swift).
// The kernel checks cover every ISA this CPU supports, so a machine without AVX-512 VNNI (say)
// silently tests less. EDGE_MRCNN_REQUIRE_ISAS="scalar avx2 ..." (set by .ci/run to the ISAs the
// README says are tested) turns a missing one into a failed check instead.
import CShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension SelfTest {
    /// The ISAs this CPU and build support: the ones every "all ISAs" check runs on.
    public static var isasTested: [String] {
        (0..<Int32(EM_ISA_COUNT.rawValue)).filter { em_isa_supported($0) != 0 }.map { String(cString: em_isa_name($0)) }
    }

    /// EDGE_MRCNN_REQUIRE_ISAS (names separated by spaces or commas), empty when unset.
    public static var requiredISAs: [String] {
        guard let e = getenv("EDGE_MRCNN_REQUIRE_ISAS") else { return [] }
        return String(cString: e).split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
    }

    /// The required ISAs that are not tested here (unknown names included).
    public static var missingRequiredISAs: [String] {
        let have = Set(isasTested)
        return requiredISAs.filter { !have.contains($0) }
    }

    static var isaChecks: [SelfCheck] {
        [
            SelfCheck("kernels: ISAs required by EDGE_MRCNN_REQUIRE_ISAS are tested here") {
                let missing = missingRequiredISAs
                try expect(missing.isEmpty, "EDGE_MRCNN_REQUIRE_ISAS=\"\(requiredISAs.joined(separator: " "))\" but "
                    + "\(missing.joined(separator: ", ")) cannot run on this CPU (tested: \(isasTested.joined(separator: " ")))")
            },
        ]
    }
}
