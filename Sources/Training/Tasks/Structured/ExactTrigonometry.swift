/// Sine and cosine from basic arithmetic only (IEEE addition and multiplication round the same everywhere),
/// so the rendered structured images are bit-identical across machines and C libraries.
enum ExactTrigonometry {
    /// `(sin x, cos x)` for moderate |x| (accurate to about 1e-15 for |x| < 1e4).
    static func sinCos(_ x: Double) -> (sin: Double, cos: Double) {
        let halfPi = 1.570_796_326_794_896_6
        let quarterTurns = (x / halfPi).rounded()
        let r = x - quarterTurns * halfPi
        let r2 = r * r
        // Taylor series on |r| <= pi/4; the last terms are below 1e-16 there.
        let s = r * (1 - r2 / 6 * (1 - r2 / 20 * (1 - r2 / 42 * (1 - r2 / 72 * (1 - r2 / 110 * (1 - r2 / 156))))))
        let c = 1 - r2 / 2 * (1 - r2 / 12 * (1 - r2 / 30 * (1 - r2 / 56 * (1 - r2 / 90 * (1 - r2 / 132 * (1 - r2 / 182))))))
        switch ((Int(quarterTurns) % 4) + 4) % 4 {
        case 0: return (s, c)
        case 1: return (c, -s)
        case 2: return (-s, -c)
        default: return (-c, s)
        }
    }
}
