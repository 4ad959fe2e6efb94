//! Validation of a parsed pipeline: every check that can be made before a thread starts.
//! The result is a [`Plan`]: stages in dependency order and typed edges.

use super::{PipelineError, PipelineFile, Role, StageKind, NETWORKS};
use crate::data::{digits_files, DataDir};
use crate::graph::Policy;
use crate::item::Domain;
use crate::item::ItemType;
use crate::method::MethodKind;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use toml::Value;

/// The most items an edge may hold.
const MAX_CAPACITY: usize = 1 << 20;
/// The largest batch.
const MAX_BATCH: usize = 1 << 16;
/// The widest hidden layer of the digits classifier.
const MAX_HIDDEN: usize = 1 << 16;
/// The largest channel multiplier of EnvNet.
const MAX_WIDTH: usize = 64;
/// The most classes a network may have.
const MAX_CLASSES: usize = 1 << 16;

/// One parsed `input` entry: upstream stage, capacity, policy, position.
type InputRef = (String, usize, Policy, Range<usize>);

/// Capacity of an edge when the file does not say.
pub const DEFAULT_CAPACITY: usize = 64;

/// One validated stage.
#[derive(Clone, Debug)]
pub struct StagePlan {
    /// Its name (the `NAME` of `[stage.NAME]`).
    pub name: String,
    /// Its kind.
    pub kind: StageKind,
    /// The item type it takes (`None` for sources).
    pub input: Option<ItemType>,
}

/// One validated edge.
#[derive(Clone, Debug)]
pub struct EdgePlan {
    /// Upstream stage.
    pub from: String,
    /// Downstream stage.
    pub to: String,
    /// Item type carried.
    pub item: ItemType,
    /// Bounded capacity (>= 1).
    pub capacity: usize,
    /// What happens when it is full.
    pub policy: Policy,
}

/// A validated graph: stages in dependency order (sources first) and edges.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Stages, upstream before downstream.
    pub stages: Vec<StagePlan>,
    /// Edges.
    pub edges: Vec<EdgePlan>,
}

impl Plan {
    /// The model (`train`) stage, or an error saying the pipeline has none.
    pub fn train_stage(&self) -> anyhow::Result<&StagePlan> {
        self.stages
            .iter()
            .find(|s| s.kind == StageKind::Train)
            .ok_or_else(|| anyhow::anyhow!("the pipeline has no `train` stage"))
    }

    /// A readable description: stages with their kinds and types, and every edge with its
    /// item type, capacity and policy.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let width = self.stages.iter().map(|p| p.name.len()).max().unwrap_or(4);
        let _ = writeln!(s, "stages ({}):", self.stages.len());
        for p in &self.stages {
            let io = match (p.input, p.kind.output()) {
                (None, Some(o)) => format!("-> {o}"),
                (Some(i), Some(o)) => format!("{i} -> {o}"),
                (Some(i), None) => format!("{i} ->"),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                s,
                "  {:<width$}  {:<9}  {:<18}  {}",
                p.name,
                p.kind.name(),
                io,
                p.kind.describe()
            );
        }
        let _ = writeln!(s, "edges ({}):", self.edges.len());
        let pos = |n: &str| {
            self.stages
                .iter()
                .position(|p| p.name == n)
                .unwrap_or(usize::MAX)
        };
        let mut edges: Vec<&EdgePlan> = self.edges.iter().collect();
        edges.sort_by_key(|e| (pos(&e.from), pos(&e.to)));
        for e in edges {
            let _ = writeln!(
                s,
                "  {:>width$} -> {:<width$}  {:<7}  capacity {:<4}  {}",
                e.from, e.to, e.item, e.capacity, e.policy
            );
        }
        s
    }
}

impl PipelineFile {
    /// Checks the graph: kinds, keys, wiring, types, capacities, references.
    pub fn validate(&self) -> Result<Plan, PipelineError> {
        let spec = &self.spec;
        if spec.stage.is_empty() {
            return Err(self.error(
                0..0,
                Some("stage"),
                "the pipeline has no stages: add [stage.NAME] tables, starting with a source such as `kind = \"dataset\"`",
            ));
        }
        let mut kinds = BTreeMap::new();
        for (name, st) in &spec.stage {
            let st = st.get_ref();
            let key = format!("stage.{name}.kind");
            let kind = StageKind::parse(st.kind.get_ref()).ok_or_else(|| {
                let known: Vec<&str> = StageKind::ALL.iter().map(|k| k.name()).collect();
                let guess = super::error::closest(st.kind.get_ref(), &known)
                    .map_or(String::new(), |k| format!("; did you mean `{k}`?"));
                self.error(
                    st.kind.span(),
                    Some(&key),
                    format!(
                        "unknown stage kind `{}`{guess} (the kinds are: {})",
                        st.kind.get_ref(),
                        known.join(", ")
                    ),
                )
            })?;
            let (allowed, required) = kind.keys();
            for (k, span) in st.present_keys() {
                if !allowed.contains(&k) {
                    return Err(self.error(
                        span,
                        Some(&format!("stage.{name}.{k}")),
                        format!(
                            "`{k}` does not apply to a `{}` stage (it takes: {})",
                            kind.name(),
                            if allowed.is_empty() {
                                "no settings besides input".to_string()
                            } else {
                                allowed.join(", ")
                            }
                        ),
                    ));
                }
            }
            let present: Vec<&str> = st.present_keys().into_iter().map(|(k, _)| k).collect();
            for r in required {
                if !present.contains(r) {
                    return Err(self.error(
                        st.kind.span(),
                        Some(&format!("stage.{name}")),
                        format!("a `{}` stage needs the key `{r}`", kind.name()),
                    ));
                }
            }
            self.check_stage_values(name, kind, st)?;
            kinds.insert(name.clone(), kind);
        }

        let mut edges = Vec::new();
        for (name, st) in &spec.stage {
            let st = st.get_ref();
            let kind = kinds[name];
            match (&st.input, kind.role()) {
                (Some(input), Role::Source) => {
                    return Err(self.error(
                        input.span(),
                        Some(&format!("stage.{name}.input")),
                        format!("`{name}` is a source (`{}`): sources take no input", kind.name()),
                    ))
                }
                (None, Role::Stage | Role::Sink) => {
                    return Err(self.error(
                        st.kind.span(),
                        Some(&format!("stage.{name}")),
                        format!(
                            "`{name}` (`{}`) has no `input`: say which stage it reads from, e.g. input = \"{}\"",
                            kind.name(),
                            kinds.keys().next().map(String::as_str).unwrap_or("source")
                        ),
                    ))
                }
                _ => {}
            }
            if let Some(input) = &st.input {
                let key = format!("stage.{name}.input");
                for (from, capacity, policy, span) in
                    self.parse_inputs(input.get_ref(), input.span(), &key)?
                {
                    let Some(&from_kind) = kinds.get(&from) else {
                        let names: Vec<&str> = kinds.keys().map(String::as_str).collect();
                        return Err(self.error(
                            span,
                            Some(&key),
                            format!("`{name}` reads from `{from}`, but there is no stage named `{from}` (stages: {})", names.join(", ")),
                        ));
                    };
                    let Some(out) = from_kind.output() else {
                        return Err(self.error(
                            span,
                            Some(&key),
                            format!(
                                "`{from}` is a sink (`{}`): it has no output to read from",
                                from_kind.name()
                            ),
                        ));
                    };
                    let want = self.input_type(name, kind);
                    if out != want {
                        if kind == StageKind::Train && want == ItemType::Pair {
                            return Err(self.error(
                                span,
                                Some(&key),
                                format!(
                                    "method `{}` adapts to a target domain and trains on source/target pairs, but `{from}` ({}) emits `{out}` items: feed the model stage from a `pair` stage that joins a source and a target batcher",
                                    st.method.as_ref().map(|m| m.get_ref().as_str()).unwrap_or(""),
                                    from_kind.name()
                                ),
                            ));
                        }
                        return Err(self.error(
                            span,
                            Some(&key),
                            format!(
                                "type mismatch on edge `{from}` -> `{name}`: `{from}` ({}) emits `{out}` items, but `{name}` ({}) takes `{want}` items",
                                from_kind.name(),
                                kind.name()
                            ),
                        ));
                    }
                    if edges
                        .iter()
                        .any(|e: &EdgePlan| e.from == from && e.to == *name)
                    {
                        return Err(self.error(
                            span,
                            Some(&key),
                            format!("`{name}` reads from `{from}` twice"),
                        ));
                    }
                    edges.push(EdgePlan {
                        from,
                        to: name.clone(),
                        item: out,
                        capacity,
                        policy,
                    });
                }
            }
        }

        if !kinds.values().any(|k| k.role() == Role::Source) {
            return Err(self.error(
                0..0,
                Some("stage"),
                "the pipeline has no source stage: nothing would ever flow; add one, e.g. [stage.source] with kind = \"dataset\"",
            ));
        }
        for (name, kind) in &kinds {
            if kind.role() != Role::Sink && !edges.iter().any(|e| &e.from == name) {
                return Err(self.error(
                    self.spec.stage[name].get_ref().kind.span(),
                    Some(&format!("stage.{name}")),
                    format!("nothing reads from `{name}`: connect it to a downstream stage or remove it"),
                ));
            }
        }
        let mut stages = self.order(&kinds, &edges)?;
        for s in &mut stages {
            s.input = s.kind.input().map(|_| self.input_type(&s.name, s.kind));
        }
        self.check_pairs(&kinds, &edges)?;
        self.check_shapes(&kinds, &edges)?;
        let trains = stages.iter().filter(|s| s.kind == StageKind::Train).count();
        if trains > 0 && spec.train.is_none() {
            return Err(self.error(
                0..0,
                Some("train"),
                "a pipeline with a `train` stage needs a [train] section with `epochs`",
            ));
        }
        if trains > 1 {
            return Err(self.error(
                0..0,
                Some("stage"),
                "a pipeline can have only one `train` stage",
            ));
        }
        let metrics = stages
            .iter()
            .filter(|s| s.kind == StageKind::Metrics)
            .count();
        if trains == 1 && metrics != 1 {
            let train = stages
                .iter()
                .find(|s| s.kind == StageKind::Train)
                .expect("counted");
            return Err(self.error(
                self.spec.stage[&train.name].get_ref().kind.span(),
                Some(&format!("stage.{}", train.name)),
                format!(
                    "a training pipeline needs exactly one `metrics` sink reading from `{}` (it writes metrics.jsonl and summary.json); found {metrics}",
                    train.name
                ),
            ));
        }
        if let Some(t) = &spec.train {
            let t = t.get_ref();
            if *t.epochs.get_ref() == 0 {
                return Err(self.error(
                    t.epochs.span(),
                    Some("train.epochs"),
                    "epochs must be at least 1",
                ));
            }
            if let Some(c) = &t.checkpoint_every {
                if *c.get_ref() == 0 {
                    return Err(self.error(
                        c.span(),
                        Some("train.checkpoint_every"),
                        "checkpoint_every must be at least 1",
                    ));
                }
            }
            for e in &t.eval {
                self.data_ref(e.get_ref(), e.span(), "train.eval")?;
            }
            for (key, v) in [("eval_every", &t.eval_every), ("fold", &t.fold)] {
                if let Some(v) = v {
                    if *v.get_ref() == 0 {
                        return Err(self.error(
                            v.span(),
                            Some(&format!("train.{key}")),
                            format!("{key} must be at least 1"),
                        ));
                    }
                }
            }
        }
        Ok(Plan { stages, edges })
    }

    /// Each data set a source-domain `dataset` stage reads, with the classes it keeps (its
    /// `classes`, else all ten digits), sorted and without repeats.
    fn source_classes(&self) -> Vec<(String, Vec<u8>)> {
        self.spec
            .stage
            .values()
            .map(|s| s.get_ref())
            .filter(|s| StageKind::parse(s.kind.get_ref()) == Some(StageKind::Dataset))
            .filter(|s| {
                s.domain.as_ref().map_or(Domain::Source, |d| *d.get_ref()) == Domain::Source
            })
            .filter_map(|s| s.data.as_ref())
            .filter_map(|d| {
                let spec = self.spec.data.get(d.get_ref())?.get_ref();
                let known: BTreeSet<u8> = spec
                    .classes
                    .as_ref()
                    .map_or((0..10).collect(), |c| c.get_ref().iter().copied().collect());
                Some((d.get_ref().clone(), known.into_iter().collect()))
            })
            .collect()
    }

    fn check_stage_values(
        &self,
        name: &str,
        kind: StageKind,
        st: &super::StageSpec,
    ) -> Result<(), PipelineError> {
        if let Some(d) = &st.data {
            self.data_ref(d.get_ref(), d.span(), &format!("stage.{name}.data"))?;
        }
        if let Some(b) = &st.batch_size {
            if *b.get_ref() == 0 {
                return Err(self.error(
                    b.span(),
                    Some(&format!("stage.{name}.batch_size")),
                    "batch_size must be at least 1",
                ));
            }
            if *b.get_ref() > MAX_BATCH {
                return Err(self.error(
                    b.span(),
                    Some(&format!("stage.{name}.batch_size")),
                    format!(
                        "batch_size {} is too large (at most {MAX_BATCH})",
                        b.get_ref()
                    ),
                ));
            }
        }
        if let Some(s) = &st.std {
            let v = *s.get_ref();
            if v.is_nan() || v == 0.0 {
                return Err(self.error(
                    s.span(),
                    Some(&format!("stage.{name}.std")),
                    "std must be a non-zero number",
                ));
            }
        }
        if let Some(m) = &st.method {
            let Some(method) = MethodKind::parse(m.get_ref()) else {
                let names: Vec<&str> = MethodKind::ALL.iter().map(|m| m.name()).collect();
                return Err(self.error(
                    m.span(),
                    Some(&format!("stage.{name}.method")),
                    format!(
                        "unknown method `{}`; the methods are: {}",
                        m.get_ref(),
                        names.join(", ")
                    ),
                ));
            };
            if let Some(h) = st.network.as_ref().and_then(|n| n.get_ref().heads.as_ref()) {
                if *h.get_ref() != method.heads() {
                    return Err(self.error(
                        h.span(),
                        Some(&format!("stage.{name}.network.heads")),
                        format!(
                            "method `{}` needs a network with {} classifier head{}, but this one has {}",
                            method.name(),
                            method.heads(),
                            if method.heads() == 1 { "" } else { "s" },
                            h.get_ref()
                        ),
                    ));
                }
            }
            if let Some(g) = &st.grl {
                if method != MethodKind::Osbp {
                    return Err(self.error(
                        g.span(),
                        Some(&format!("stage.{name}.grl")),
                        format!(
                            "`grl` (gradient reversal) is a setting of method `osbp`, not of `{}`",
                            method.name()
                        ),
                    ));
                }
                let l = g.get_ref().lambda;
                if !l.is_finite() || l < 0.0 {
                    return Err(self.error(
                        g.span(),
                        Some(&format!("stage.{name}.grl.lambda")),
                        format!("lambda must be a finite number of at least 0 (got {l})"),
                    ));
                }
            }
            if let Some(t) = &st.reject_below {
                if method != MethodKind::SourceOnly || !(0.0..=1.0).contains(t.get_ref()) {
                    return Err(self.error(
                        t.span(),
                        Some(&format!("stage.{name}.reject_below")),
                        format!(
                            "reject_below is a probability (0 to 1) for method `source_only`: it makes a closed-set model answer \"unknown\" (got {} with `{}`)",
                            t.get_ref(),
                            method.name()
                        ),
                    ));
                }
            }
            if method == MethodKind::Osbp {
                let n = st
                    .network
                    .as_ref()
                    .and_then(|n| n.get_ref().num_classes)
                    .unwrap_or(10);
                if n < 2 {
                    return Err(self.error(
                        st.network.as_ref().map(|n| n.span()).unwrap_or(m.span()),
                        Some(&format!("stage.{name}.network.num_classes")),
                        format!("method `osbp` needs the known classes plus one output for \"unknown\": num_classes = {n} leaves no known class"),
                    ));
                }
                // the known classes: those of the source domain's data sets, labelled 0 to
                // K - 1 (labels are kept as they are in the data)
                let given = st
                    .network
                    .as_ref()
                    .and_then(|n| n.get_ref().num_classes)
                    .is_some();
                let at = st.network.as_ref().map(|n| n.span()).unwrap_or(m.span());
                let key = format!("stage.{name}.network.num_classes");
                for (data, known) in self.source_classes() {
                    if known.iter().enumerate().any(|(i, &c)| usize::from(c) != i) {
                        let classes = self.spec.data[&data].get_ref().classes.as_ref();
                        return Err(self.error(
                            classes.map_or(at.clone(), |c| c.span()),
                            Some(&format!("data.{data}.classes")),
                            format!(
                                "method `osbp` takes the known classes as 0 to K - 1, the last output being \"unknown\": the source data `{data}` keeps classes {known:?} (give `classes = [0, 1, ..., K - 1]`)"
                            ),
                        ));
                    }
                    if n != known.len() + 1 {
                        return Err(self.error(
                            at,
                            Some(&key),
                            format!(
                                "method `osbp` has an output per known class and one for \"unknown\": the source data `{data}` keeps {} classes, so num_classes must be {} (found {n}{})",
                                known.len(),
                                known.len() + 1,
                                if given { "" } else { ", the default" }
                            ),
                        ));
                    }
                }
            }
            if let Some(k) = &st.num_k {
                if *k.get_ref() == 0 {
                    return Err(self.error(
                        k.span(),
                        Some(&format!("stage.{name}.num_k")),
                        "num_k must be at least 1",
                    ));
                }
            }
        }
        if let Some(n) = &st.network {
            let k = &n.get_ref().kind;
            if !NETWORKS.contains(&k.get_ref().as_str()) {
                return Err(self.error(
                    k.span(),
                    Some(&format!("stage.{name}.network.kind")),
                    format!(
                        "unknown network `{}`{} (the networks are: {})",
                        k.get_ref(),
                        super::error::closest(k.get_ref(), &NETWORKS)
                            .map_or(String::new(), |n| format!("; did you mean `{n}`?")),
                        NETWORKS.join(", ")
                    ),
                ));
            }
            let net = n.get_ref();
            let key = |k: &str| format!("stage.{name}.network.{k}");
            if let Some(d) = net.dropout.filter(|d| !(0.0..1.0).contains(d)) {
                return Err(self.error(
                    n.span(),
                    Some(&key("dropout")),
                    format!("dropout {d} is out of range: the probability of dropping a unit, at least 0 and below 1 (0.5 by default)"),
                ));
            }
            if let Some(h) = net.hidden.filter(|h| !(1..=MAX_HIDDEN).contains(h)) {
                return Err(self.error(
                    n.span(),
                    Some(&key("hidden")),
                    format!("hidden {h} is out of range: the classifier's hidden width, 1 to {MAX_HIDDEN}"),
                ));
            }
            if let Some(w) = net.width.filter(|w| !(1..=MAX_WIDTH).contains(w)) {
                return Err(self.error(
                    n.span(),
                    Some(&key("width")),
                    format!(
                        "width {w} is out of range: EnvNet's channel multiplier, 1 to {MAX_WIDTH}"
                    ),
                ));
            }
            if let Some(c) = net.num_classes.filter(|c| !(2..=MAX_CLASSES).contains(c)) {
                return Err(self.error(
                    n.span(),
                    Some(&key("num_classes")),
                    format!("num_classes {c} is out of range: the network's outputs, 2 to {MAX_CLASSES}"),
                ));
            }
            if let Some(l) = &n.get_ref().hidden_layers {
                if *l.get_ref() > 2 || n.get_ref().is_sound() {
                    return Err(self.error(
                        l.span(),
                        Some(&format!("stage.{name}.network.hidden_layers")),
                        format!(
                            "hidden_layers is a setting of the digits network, 0 to 2 (got {} with `{}`)",
                            l.get_ref(),
                            k.get_ref()
                        ),
                    ));
                }
            }
        }
        if let Some(l) = &st.length {
            if !(256..=10_000_000).contains(l.get_ref()) {
                return Err(self.error(
                    l.span(),
                    Some(&format!("stage.{name}.length")),
                    format!("crop length {} is out of range: give the network's input length in samples (256 to 10,000,000)", l.get_ref()),
                ));
            }
        }
        // (key, its value, lowest, highest, what the values mean)
        type Bounded<'a> = (&'a str, &'a Option<toml::Spanned<f64>>, f64, f64, &'a str);
        let ranges: [Bounded; 5] = [
            ("max_scale", &st.max_scale, 1.0, 4.0, "1 turns time scaling off, the reference uses 1.25 (at most 4)"),
            ("gain_db", &st.gain_db, 0.0, 60.0, "0 turns random gain off, the reference uses 6 (at most 60)"),
            ("alpha", &st.alpha, 0.05, 100.0, "the ratio is drawn from Beta(alpha, alpha); 1 is the paper's uniform ratio (0.05 to 100)"),
            ("until", &st.until, 0.0, 1.0, "the share of the epochs that train on mixes (0 to 1); 1 mixes in every epoch"),
            ("prob", &st.prob, 0.0, 1.0, "the probability that a crop is mixed (0 to 1); 1 mixes every crop"),
        ];
        for (key, value, lo, hi, advice) in ranges {
            if let Some(v) = value {
                let x = *v.get_ref();
                if !(lo..=hi).contains(&x) {
                    return Err(self.error(
                        v.span(),
                        Some(&format!("stage.{name}.{key}")),
                        format!("{key} {x} is out of range: {advice}"),
                    ));
                }
            }
        }
        if let Some(o) = &st.optimizer {
            let lr = o.get_ref().lr;
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(self.error(
                    o.span(),
                    Some(&format!("stage.{name}.optimizer.lr")),
                    "the learning rate must be a positive number",
                ));
            }
            let opt = o.get_ref();
            let bad = |key: &str, message: String| {
                Err(self.error(
                    o.span(),
                    Some(&format!("stage.{name}.optimizer.{key}")),
                    message,
                ))
            };
            if !(0.0..1.0).contains(&opt.momentum) {
                return bad(
                    "momentum",
                    format!(
                        "momentum {} is out of range: at least 0 and below 1 (0.9 is usual)",
                        opt.momentum
                    ),
                );
            }
            if !(opt.weight_decay >= 0.0 && opt.weight_decay.is_finite()) {
                return bad(
                    "weight_decay",
                    format!(
                        "weight_decay {} must be a finite number of at least 0",
                        opt.weight_decay
                    ),
                );
            }
            if !(opt.gamma > 0.0 && opt.gamma <= 1.0) {
                return bad(
                    "gamma",
                    format!("gamma {} is out of range: the factor of each step, above 0 and at most 1 (0.1 divides the rate by ten)", opt.gamma),
                );
            }
            if let Some(m) = opt.milestones.iter().find(|m| !(**m > 0.0 && **m < 1.0)) {
                return bad(
                    "milestones",
                    format!("milestone {m} is out of range: milestones are shares of the epochs, above 0 and below 1 (e.g. [0.5, 0.75])"),
                );
            }
            if opt.milestones.windows(2).any(|w| w[0] >= w[1]) {
                return bad(
                    "milestones",
                    "milestones must rise: each a later share of the epochs than the one before"
                        .to_string(),
                );
            }
        }
        let _ = kind;
        Ok(())
    }

    /// The item type a stage takes: fixed by its kind, but for a model stage by its method.
    fn input_type(&self, name: &str, kind: StageKind) -> ItemType {
        let method = self.spec.stage[name]
            .get_ref()
            .method
            .as_ref()
            .and_then(|m| MethodKind::parse(m.get_ref()));
        match (kind, method) {
            (StageKind::Train, Some(m)) => m.input(),
            _ => kind.input().expect("stages and sinks take input"),
        }
    }

    /// The domains of the dataset sources upstream of `stage`.
    fn upstream_domains(&self, stage: &str, edges: &[EdgePlan]) -> BTreeSet<Domain> {
        self.upstream_datasets(stage, edges)
            .iter()
            .map(|n| self.domain_of(n))
            .collect()
    }

    /// The domain a `dataset` stage declares (source by default).
    fn domain_of(&self, stage: &str) -> Domain {
        self.spec.stage[stage]
            .get_ref()
            .domain
            .as_ref()
            .map(|d| *d.get_ref())
            .unwrap_or(Domain::Source)
    }

    /// The names of every stage upstream of `stage` (itself included).
    fn upstream_stages(&self, stage: &str, edges: &[EdgePlan]) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![stage.to_string()];
        while let Some(n) = todo.pop() {
            if seen.insert(n.clone()) {
                todo.extend(edges.iter().filter(|e| e.to == n).map(|e| e.from.clone()));
            }
        }
        seen.into_iter().collect()
    }

    /// The names of the `dataset` stages upstream of `stage` (itself included), sorted.
    fn upstream_datasets(&self, stage: &str, edges: &[EdgePlan]) -> Vec<String> {
        // sorted: upstream_stages collects into a sorted set
        self.upstream_stages(stage, edges)
            .into_iter()
            .filter(|n| {
                StageKind::parse(self.spec.stage[n].get_ref().kind.get_ref())
                    == Some(StageKind::Dataset)
            })
            .collect()
    }

    /// Every data set a model stage trains or is evaluated on yields the image shape
    /// its network takes: source and target alike.
    fn check_shapes(
        &self,
        kinds: &BTreeMap<String, StageKind>,
        edges: &[EdgePlan],
    ) -> Result<(), PipelineError> {
        for (name, spec) in &self.spec.data {
            let d = spec.get_ref();
            let sound = d.set.get_ref().sound().is_some();
            let misplaced: Vec<(&str, std::ops::Range<usize>)> = if sound {
                [
                    ("size", d.size.as_ref().map(|v| v.span())),
                    ("pad", d.pad.as_ref().map(|v| v.span())),
                    ("classes", d.classes.as_ref().map(|v| v.span())),
                ]
                .into_iter()
                .filter_map(|(k, sp)| sp.map(|sp| (k, sp)))
                .collect()
            } else {
                [
                    ("rate", d.rate.as_ref().map(|v| v.span())),
                    ("classes", None),
                    (
                        "per_class_per_fold",
                        d.per_class_per_fold.as_ref().map(|v| v.span()),
                    ),
                    (
                        "skip_per_class_per_fold",
                        d.skip_per_class_per_fold.as_ref().map(|v| v.span()),
                    ),
                ]
                .into_iter()
                .filter_map(|(k, sp)| sp.map(|sp| (k, sp)))
                .collect()
            };
            if let Some((k, sp)) = misplaced.into_iter().next() {
                return Err(self.error(
                    sp,
                    Some(&format!("data.{name}.{k}")),
                    format!(
                        "`{k}` does not apply to {} set `{}` (images take size and pad; sound takes rate, per_class_per_fold, skip_per_class_per_fold and skip_bad_files)",
                        if sound { "sound" } else { "the image" },
                        d.set.get_ref()
                    ),
                ));
            }
            if let Some(r) = &d.rate {
                if !(1000..=192_000).contains(r.get_ref()) {
                    return Err(self.error(
                        r.span(),
                        Some(&format!("data.{name}.rate")),
                        format!(
                            "sample rate {} Hz is out of range (1,000 to 192,000)",
                            r.get_ref()
                        ),
                    ));
                }
            }
            if let Some(c) = &d.classes {
                let bad = c.get_ref().iter().find(|&&k| k >= 10);
                if c.get_ref().is_empty() || bad.is_some() {
                    return Err(self.error(
                        c.span(),
                        Some(&format!("data.{name}.classes")),
                        match bad {
                            Some(k) => format!("class {k} does not exist: digits are 0-9"),
                            None => "give at least one class".to_string(),
                        },
                    ));
                }
            }
            if let Some(n) = &d.limit {
                if *n.get_ref() == 0 {
                    return Err(self.error(
                        n.span(),
                        Some(&format!("data.{name}.limit")),
                        "limit must be at least 1 (leave it out to use every example)",
                    ));
                }
            }
            if let Some(n) = &d.per_class_per_fold {
                if *n.get_ref() == 0 {
                    return Err(self.error(
                        n.span(),
                        Some(&format!("data.{name}.per_class_per_fold")),
                        "per_class_per_fold must be at least 1",
                    ));
                }
            }
            if let Some(size) = &spec.get_ref().size {
                if !(8..=512).contains(size.get_ref()) {
                    return Err(self.error(
                        size.span(),
                        Some(&format!("data.{name}.size")),
                        format!(
                            "image size {} is out of range: give a side between 8 and 512 pixels",
                            size.get_ref()
                        ),
                    ));
                }
            }
            if let Some(pad) = &spec.get_ref().pad {
                if *pad.get_ref() > 256 {
                    return Err(self.error(
                        pad.span(),
                        Some(&format!("data.{name}.pad")),
                        format!(
                            "padding of {} pixels is out of range: give at most 256",
                            pad.get_ref()
                        ),
                    ));
                }
            }
        }
        let input = crate::model::digits::INPUT_SIZE;
        for (name, kind) in kinds {
            if *kind != StageKind::Train {
                continue;
            }
            let st = self.spec.stage[name].get_ref();
            let network = st.network.as_ref().map(|n| n.get_ref());
            let method = st
                .method
                .as_ref()
                .and_then(|m| MethodKind::parse(m.get_ref()));
            if network.is_some_and(|n| n.is_sound()) {
                self.check_sound_model(name, edges, method)?;
                continue;
            }
            let sound_stage = self.upstream_stages(name, edges).into_iter().find(|n| {
                matches!(
                    StageKind::parse(self.spec.stage[n].get_ref().kind.get_ref()),
                    Some(StageKind::Crop | StageKind::BcMix)
                )
            });
            if let Some(n) = sound_stage {
                let st = self.spec.stage[&n].get_ref();
                return Err(self.error(
                    st.kind.span(),
                    Some(&format!("stage.{n}.kind")),
                    format!("`{n}` is a sound stage (`{}`), but model stage `{name}` is the digits network: use an EnvNet network (kind = \"envnet2_small\") on sound data", st.kind.get_ref()),
                ));
            }
            if method == Some(MethodKind::Bc) {
                return Err(self.error(
                    st.method.as_ref().expect("parsed").span(),
                    Some(&format!("stage.{name}.method")),
                    "method `bc` (between-class learning) mixes sounds: use it with an EnvNet network (kind = \"envnet2\" or \"envnet2_small\") after `crop` and `bc_mix` stages",
                ));
            }
            let mut sets: Vec<(String, Option<Domain>)> = self
                .upstream_datasets(name, edges)
                .into_iter()
                .filter_map(|stage| {
                    let data = self.spec.stage[&stage].get_ref().data.as_ref()?;
                    Some((data.get_ref().clone(), Some(self.domain_of(&stage))))
                })
                .collect();
            if let Some(train) = &self.spec.train {
                sets.extend(
                    train
                        .get_ref()
                        .eval
                        .iter()
                        .map(|e| (e.get_ref().clone(), None)),
                );
            }
            for (data, domain) in &sets {
                let Some(spec) = self.spec.data.get(data) else {
                    continue; // an undeclared name is reported by its own check
                };
                let spec = spec.get_ref();
                let side = spec.side();
                if side == input {
                    continue;
                }
                let role = match domain {
                    Some(Domain::Source) => "source data",
                    Some(Domain::Target) => "target data",
                    None => "evaluation data",
                };
                let others: Vec<String> = sets
                    .iter()
                    .filter(|(d, _)| d != data)
                    .filter_map(|(d, _)| self.spec.data.get(d).map(|s| (d, s.get_ref().side())))
                    .filter(|(_, s)| *s == input)
                    .map(|(d, s)| format!("`{d}` gives 1x{s}x{s}"))
                    .collect();
                let span = spec
                    .size
                    .as_ref()
                    .map(|s| s.span())
                    .unwrap_or_else(|| spec.set.span());
                return Err(self.error(
                    span,
                    Some(&format!("data.{data}.size")),
                    format!(
                        "the {role} `{data}` gives 1x{side}x{side} images, but model stage `{name}` (digits network) takes 1x{input}x{input}{}: set `size` (plus twice `pad`) to {input}",
                        if others.is_empty() { String::new() } else { format!(" and {}", others.join(", ")) }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A sound model: a `crop` stage upstream, sound data only (training and
    /// evaluation), an input length the network can take, and for BC learning a
    /// `bc_mix` stage after the crop.
    fn check_sound_model(
        &self,
        name: &str,
        edges: &[EdgePlan],
        method: Option<MethodKind>,
    ) -> Result<(), PipelineError> {
        let st = self.spec.stage[name].get_ref();
        let net = st.network.as_ref().expect("checked");
        let at = |key: &str, msg: String| {
            let span = match (key, &st.method, &st.input) {
                ("method", Some(m), _) => m.span(),
                ("input", _, Some(i)) => i.span(),
                _ => net.span(),
            };
            self.error(span, Some(&format!("stage.{name}.{key}")), msg)
        };
        if matches!(
            method,
            Some(MethodKind::Mcd | MethodKind::Adr | MethodKind::Osbp)
        ) {
            return Err(at(
                "method",
                format!(
                    "method `{}` is implemented for the digits network only; sound models train with `source_only` or `bc`",
                    method.expect("matched").name()
                ),
            ));
        }
        // the chain upstream of the model stage, nearest first
        let mut chain = Vec::new();
        let mut cur = name.to_string();
        while let Some(e) = edges.iter().find(|e| e.to == cur) {
            cur = e.from.clone();
            chain.push(cur.clone());
        }
        let kind_of = |n: &str| StageKind::parse(self.spec.stage[n].get_ref().kind.get_ref());
        let crop = chain
            .iter()
            .position(|n| kind_of(n) == Some(StageKind::Crop));
        let mix = chain
            .iter()
            .position(|n| kind_of(n) == Some(StageKind::BcMix));
        let Some(crop_at) = crop else {
            return Err(at(
                "input",
                format!("sound model stage `{name}` needs a `crop` stage upstream (kind = \"crop\", length = the network's input in samples) to turn clips into inputs"),
            ));
        };
        match (method, mix) {
            (Some(MethodKind::Bc), None) => {
                return Err(at(
                    "method",
                    "method `bc` trains on between-class mixes: put a `bc_mix` stage between the `crop` stage and the batcher".into(),
                ))
            }
            (Some(MethodKind::Bc), Some(m)) if m > crop_at => {
                return Err(at(
                    "input",
                    "`bc_mix` must come after `crop`: it mixes crops of equal length".into(),
                ))
            }
            (Some(MethodKind::SourceOnly), Some(_)) => {
                return Err(at(
                    "method",
                    "this model stage is fed by a `bc_mix` stage, whose soft labels only `method = \"bc\"` uses".into(),
                ))
            }
            _ => {}
        }
        let crop_stage = self.spec.stage[&chain[crop_at]].get_ref();
        let length = crop_stage
            .length
            .as_ref()
            .map(|l| *l.get_ref())
            .unwrap_or(0);
        let mut sets: Vec<String> = chain
            .iter()
            .filter_map(|n| {
                self.spec.stage[n]
                    .get_ref()
                    .data
                    .as_ref()
                    .map(|d| d.get_ref().clone())
            })
            .collect();
        if let Some(train) = &self.spec.train {
            sets.extend(train.get_ref().eval.iter().map(|e| e.get_ref().clone()));
        }
        let mut rate = None;
        for data in &sets {
            let Some(spec) = self.spec.data.get(data) else {
                continue;
            };
            let spec = spec.get_ref();
            if spec.set.get_ref().sound().is_none() {
                return Err(self.error(
                    spec.set.span(),
                    Some(&format!("data.{data}.set")),
                    format!("model stage `{name}` is a sound network, but `{data}` is the image set `{}`", spec.set.get_ref()),
                ));
            }
            if rate.is_some_and(|r| r != spec.rate()) {
                return Err(self.error(
                    spec.set.span(),
                    Some(&format!("data.{data}.rate")),
                    format!("`{data}` is at {} Hz but the other data of model stage `{name}` at {} Hz: give them the same `rate`", spec.rate(), rate.unwrap_or(0)),
                ));
            }
            rate = Some(spec.rate());
        }
        let variant = if net.get_ref().kind.get_ref() == "envnet2" {
            crate::model::envnet::EnvNetVariant::V2
        } else {
            crate::model::envnet::EnvNetVariant::Small
        };
        let cfg = crate::model::envnet::EnvNetConfig {
            variant,
            input: length,
            rate: rate.unwrap_or(16_000),
            num_classes: 10,
            dropout: 0.5,
            width: 1,
        };
        if let Err(why) = cfg.feature_shape() {
            return Err(self.error(
                crop_stage.length.as_ref().map(|l| l.span()).unwrap_or(net.span()),
                Some(&format!("stage.{}.length", chain[crop_at])),
                format!("{why}: give a longer crop (the published EnvNet-v2 takes 66,650 samples; the small variant about 0.46 s or more)"),
            ));
        }
        Ok(())
    }

    /// A `pair` stage needs one input chain from a source-domain dataset and one from a
    /// target-domain dataset; every other stage sees one domain only, except through a pair.
    fn check_pairs(
        &self,
        kinds: &BTreeMap<String, StageKind>,
        edges: &[EdgePlan],
    ) -> Result<(), PipelineError> {
        for (name, kind) in kinds {
            let st = self.spec.stage[name].get_ref();
            let inputs: Vec<&EdgePlan> = edges.iter().filter(|e| &e.to == name).collect();
            if *kind == StageKind::Pair {
                let per_input: Vec<BTreeSet<Domain>> = inputs
                    .iter()
                    .map(|e| self.upstream_domains(&e.from, edges))
                    .collect();
                let ok = per_input.len() == 2
                    && per_input.iter().all(|d| d.len() == 1)
                    && per_input[0] != per_input[1];
                if !ok {
                    return Err(self.error(
                        st.input.as_ref().map(|i| i.span()).unwrap_or(st.kind.span()),
                        Some(&format!("stage.{name}.input")),
                        format!(
                            "a `pair` stage needs two inputs, one fed by a `dataset` with domain = \"source\" and one by a `dataset` with domain = \"target\" (found inputs from: {})",
                            per_input
                                .iter()
                                .map(|d| d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("+"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            } else if *kind == StageKind::Train {
                let method = st
                    .method
                    .as_ref()
                    .and_then(|m| MethodKind::parse(m.get_ref()));
                let domains = self.upstream_domains(name, edges);
                if method == Some(MethodKind::SourceOnly)
                    && domains.contains(&Domain::Target)
                    && kinds.values().all(|k| *k != StageKind::Pair)
                {
                    return Err(self.error(
                        st.kind.span(),
                        Some(&format!("stage.{name}")),
                        "a `source_only` model stage would train on target-domain batches: feed it source data only",
                    ));
                }
            }
        }
        Ok(())
    }

    fn data_ref(&self, data: &str, span: Range<usize>, key: &str) -> Result<(), PipelineError> {
        if self.spec.data.contains_key(data) {
            return Ok(());
        }
        let names: Vec<&str> = self.spec.data.keys().map(String::as_str).collect();
        Err(self.error(
            span,
            Some(key),
            if names.is_empty() {
                format!("data set `{data}` is not declared: add a [data.{data}] table with `set` and `split`")
            } else {
                format!("data set `{data}` is not declared (declared: {}); add a [data.{data}] table", names.join(", "))
            },
        ))
    }

    /// Parses an `input` value into `(from, capacity, policy, span)` tuples.
    fn parse_inputs(
        &self,
        v: &Value,
        span: Range<usize>,
        key: &str,
    ) -> Result<Vec<InputRef>, PipelineError> {
        let bad = |msg: String| self.error(span.clone(), Some(key), msg);
        let one = |v: &Value| -> Result<InputRef, PipelineError> {
            match v {
                Value::String(s) => Ok((s.clone(), DEFAULT_CAPACITY, Policy::Block, span.clone())),
                Value::Table(t) => {
                    let mut from = None;
                    let mut capacity = DEFAULT_CAPACITY;
                    let mut policy = Policy::Block;
                    for (k, val) in t {
                        match (k.as_str(), val) {
                            ("from", Value::String(s)) => from = Some(s.clone()),
                            ("capacity", Value::Integer(c)) => {
                                if *c < 1 {
                                    // A zero-capacity channel is a rendezvous: with drop_oldest
                                    // there would be nothing to drop, and a stalled reader
                                    // would hang the writer. Refuse it outright.
                                    return Err(bad(format!("capacity must be at least 1 (found {c}): an edge needs room for one item")));
                                }
                                if *c > MAX_CAPACITY as i64 {
                                    return Err(bad(format!("capacity {c} is too large: an edge holds at most {MAX_CAPACITY} items (a few hundred keep every stage busy)")));
                                }
                                capacity = *c as usize;
                            }
                            ("policy", Value::String(p)) => {
                                policy = match p.as_str() {
                                    "block" => Policy::Block,
                                    "drop_oldest" => Policy::DropOldest,
                                    other => return Err(bad(format!("unknown policy `{other}`: use `block` (never lose items) or `drop_oldest` (bounded latency, drops counted)"))),
                                }
                            }
                            ("from" | "capacity" | "policy", other) => {
                                return Err(bad(format!("wrong type for `{k}`: found {}", other.type_str())))
                            }
                            (other, _) => return Err(bad(format!("unknown key `{other}` in an input (it takes: from, capacity, policy)"))),
                        }
                    }
                    let from = from.ok_or_else(|| bad("an input table needs `from = \"STAGE\"`".to_string()))?;
                    Ok((from, capacity, policy, span.clone()))
                }
                other => Err(bad(format!(
                    "wrong type: found {}; an input is a stage name, {{ from = \"NAME\", capacity = 64, policy = \"block\" }}, or a list of those",
                    other.type_str()
                ))),
            }
        };
        match v {
            Value::Array(a) if a.is_empty() => {
                Err(bad("empty input list: name at least one stage".into()))
            }
            Value::Array(a) => a.iter().map(one).collect(),
            other => Ok(vec![one(other)?]),
        }
    }

    /// Orders stages upstream-first; a cycle is an error.
    fn order(
        &self,
        kinds: &BTreeMap<String, StageKind>,
        edges: &[EdgePlan],
    ) -> Result<Vec<StagePlan>, PipelineError> {
        let mut indeg: BTreeMap<&str, usize> = kinds.keys().map(|k| (k.as_str(), 0)).collect();
        for e in edges {
            *indeg.get_mut(e.to.as_str()).expect("validated") += 1;
        }
        let mut ready: Vec<&str> = indeg
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(k, _)| *k)
            .collect();
        ready.reverse();
        let mut out = Vec::new();
        let mut done = BTreeSet::new();
        while let Some(n) = ready.pop() {
            done.insert(n);
            out.push(StagePlan {
                name: n.to_string(),
                kind: kinds[n],
                input: None,
            });
            for e in edges.iter().filter(|e| e.from == n) {
                let d = indeg.get_mut(e.to.as_str()).expect("validated");
                *d -= 1;
                if *d == 0 {
                    ready.push(e.to.as_str());
                }
            }
        }
        if out.len() < kinds.len() {
            // every stage left has an input from a stage left: walking inputs back from
            // any of them as many steps as there are such stages ends on the cycle
            let left: BTreeSet<&str> = kinds
                .keys()
                .map(String::as_str)
                .filter(|k| !done.contains(k))
                .collect();
            let feeder = |to: &str| -> &str {
                edges
                    .iter()
                    .find(|e| e.to == to && left.contains(e.from.as_str()))
                    .map(|e| e.from.as_str())
                    .expect("a stage left by the ordering has an input left too")
            };
            let mut on = *left.first().expect("some stage is left");
            for _ in 0..left.len() {
                on = feeder(on);
            }
            let mut cycle = vec![on];
            let mut x = feeder(on);
            while x != on {
                cycle.push(x);
                x = feeder(x);
            }
            cycle.reverse();
            let path = cycle
                .iter()
                .chain(std::iter::once(&cycle[0]))
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" -> ");
            let st = self.spec.stage[on].get_ref();
            return Err(self.error(
                st.input.as_ref().map_or(st.kind.span(), |i| i.span()),
                Some(&format!("stage.{on}.input")),
                format!(
                    "the stages form a cycle, {path}: a pipeline must flow from sources to sinks"
                ),
            ));
        }
        Ok(out)
    }

    /// Checks that every data set the pipeline uses has its files in `dir`.
    pub fn check_data(&self, dir: &DataDir) -> Result<(), PipelineError> {
        for (name, d) in &self.spec.data {
            let spec = d.get_ref();
            let Some(digits) = spec.set.get_ref().digits() else {
                let kind = spec.set.get_ref().sound().expect("sound or images");
                let listing = match crate::data::sound::list(kind, &dir.path) {
                    Ok(l) => l,
                    Err(e) => {
                        return Err(self.error(
                            spec.set.span(),
                            Some(&format!("data.{name}")),
                            format!(
                                "data set `{name}`: {e} (data directory {}, {})",
                                dir.path.display(),
                                origin_words(dir)
                            ),
                        ))
                    }
                };
                let (fold, n) = (self.fold(), listing.folds.len());
                if !(1..=n).contains(&fold) {
                    let has = format!("{kind} has folds 1-{n} ({})", listing.folds.join(", "));
                    // the file's own `fold`, or one given on the command line (no span)
                    let in_file = self
                        .spec
                        .train
                        .as_ref()
                        .and_then(|t| t.get_ref().fold.as_ref())
                        .filter(|f| !f.span().is_empty());
                    return Err(match in_file {
                        Some(f) => self.error(
                            f.span(),
                            Some("train.fold"),
                            format!("fold {fold} does not exist: {has}"),
                        ),
                        None => self.error(
                            spec.set.span(),
                            Some(&format!("data.{name}")),
                            format!("--fold {fold} does not exist: {has}"),
                        ),
                    });
                }
                continue;
            };
            for f in digits_files(digits, *spec.split.get_ref()) {
                let p = dir.path.join(f);
                if !p.is_file() {
                    return Err(self.error(
                        spec.set.span(),
                        Some(&format!("data.{name}")),
                        format!(
                            "data set `{name}` needs the file {}, which does not exist (data directory {}, {}); point --data-dir or SCARCE_DATA_DIR at a folder that has it",
                            p.display(),
                            dir.path.display(),
                            origin_words(dir)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How the data directory was chosen, in words.
pub fn origin_words(dir: &DataDir) -> &'static str {
    match dir.origin {
        crate::data::DataDirOrigin::Flag => "from --data-dir",
        crate::data::DataDirOrigin::Env => "from SCARCE_DATA_DIR",
        crate::data::DataDirOrigin::BuiltIn => "the built-in default",
    }
}
