// One entry point: load any schema from paths with options.

/// Loads datasets by schema name.
public enum DatasetLoader {
    /// Loads `paths` (files or directories) in `schema` with `options`.
    ///
    /// - Throws: `DatasetError` naming the file, line and field of the first invalid row (unless
    ///   `options.skipInvalidRows`), or a file/configuration problem.
    public static func load(_ schema: DatasetSchema, paths: [String],
                            options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        try options.validate()
        switch schema {
        case .trl: return try TRLSchema.load(paths: paths, options: options)
        case .hhRLHF: return try HHRLHFSchema.load(paths: paths, options: options)
        case .pkuSafeRLHF: return try PKUSafeRLHFSchema.load(paths: paths, options: options)
        case .xstest: return try XSTestSchema.load(paths: paths, options: options)
        case .pyritHarm: return try PyRITHarmSchema.load(paths: paths, options: options)
        case .scores: return try ScoresSchema.load(paths: paths, options: options)
        case .prompts: return try PromptsSchema.load(paths: paths, options: options)
        }
    }
}
