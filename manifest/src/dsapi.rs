//! The legacy DSAPI (v1) form of a manifest, which old `imgadm -t dsapi`
//! sources and Project FiFo read: v1 field names, an absolute file URL, and a
//! file name whose suffix tells imgmanifest's v1→v2 upgrade the compression.

use crate::manifest::{file_name_safe, ImageType, Manifest};
use serde_json::{Map, Value};

impl Manifest {
    /// The DSAPI `files[].path` for this image: a safe file name whose suffix
    /// tells the v1→v2 upgrade the compression.
    pub fn dsapi_file_name(&self) -> String {
        let suffix = self
            .files
            .first()
            .map(|f| f.compression.file_suffix())
            .unwrap_or("");
        format!(
            "{}-{}.zfs{}",
            file_name_safe(&self.name),
            file_name_safe(&self.version),
            suffix
        )
    }

    /// The DSAPI (v1) `type`: v1 knows only zvols and zone datasets, so
    /// every other v2 type reads as a zone dataset.
    pub fn dsapi_type(&self) -> &'static str {
        match self.image_type {
            ImageType::Zvol => "zvol",
            _ => "zone-dataset",
        }
    }

    /// The legacy DSAPI (v1) form of this manifest. `file_url` must be the
    /// absolute download URL: old clients fetch it verbatim.
    pub fn to_dsapi(&self, file_url: &str) -> Value {
        let mut m = Map::new();
        let owner = self.owner.to_string();
        m.insert("uuid".into(), Value::from(self.uuid.to_string()));
        m.insert("name".into(), Value::from(self.name.clone()));
        m.insert("version".into(), Value::from(self.version.clone()));
        m.insert(
            "description".into(),
            Value::from(self.description.clone().unwrap_or_default()),
        );
        m.insert("type".into(), Value::from(self.dsapi_type()));
        m.insert("os".into(), Value::from(self.os.as_str()));
        m.insert(
            "urn".into(),
            Value::from(format!("sdc:{owner}:{}:{}", self.name, self.version)),
        );
        // imgadm's v1→v2 upgrade asserts creator_uuid; vendor_uuid is its alias.
        m.insert("creator_uuid".into(), Value::from(owner.clone()));
        m.insert("vendor_uuid".into(), Value::from(owner));
        m.insert("creator_name".into(), Value::from("sdc"));
        m.insert("cloud_name".into(), Value::from("sdc"));
        if let Some(p) = &self.published_at {
            m.insert("published_at".into(), Value::from(p.clone()));
            m.insert("created_at".into(), Value::from(p.clone()));
            m.insert("updated_at".into(), Value::from(p.clone()));
        }
        m.insert("disabled".into(), Value::from(self.disabled));
        if !self.public {
            if let Some(first) = self.acl.as_ref().and_then(|a| a.first()) {
                m.insert("restricted_to_uuid".into(), Value::from(first.to_string()));
            }
        }
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                serde_json::json!({
                    "path": self.dsapi_file_name(),
                    "sha1": f.sha1,
                    "size": f.size,
                    "url": file_url,
                })
            })
            .collect();
        m.insert("files".into(), Value::Array(files));
        if let Some(r) = &self.requirements {
            m.insert("requirements".into(), Value::Object(r.clone()));
        }
        if let Some(u) = &self.users {
            m.insert("users".into(), Value::Array(u.clone()));
        }
        if let Some(o) = &self.origin {
            m.insert("origin".into(), Value::from(o.to_string()));
        }
        for key in [
            "generate_passwords",
            "inherited_directories",
            "nic_driver",
            "disk_driver",
            "cpu_type",
            "image_size",
        ] {
            if let Some(v) = self.extra.get(key) {
                m.insert(key.into(), v.clone());
            }
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::tests::{parse, sample};
    use serde_json::json;

    #[test]
    fn dsapi_conversion() {
        let mut v = sample();
        v["name"] = json!("my image/x");
        let m = parse(&v);
        let url = "http://127.0.0.1:8080/datasets/01b2c898-945f-11e1-a523-af1afbe22822/f";
        let d = m.to_dsapi(url);
        assert!(d.get("v").is_none(), "v1 manifests carry no v");
        assert_eq!(
            d["creator_uuid"],
            json!("00000000-0000-0000-0000-000000000000")
        );
        assert_eq!(d["files"][0]["url"], json!(url));
        assert_eq!(d["files"][0]["path"], json!("my_image_x-14.1.0.zfs.gz"));
        assert_eq!(d["files"][0]["size"], json!(46008));
        assert_eq!(d["type"], json!("zone-dataset"));
        assert_eq!(d["created_at"], d["published_at"]);
        assert_eq!(d["generate_passwords"], json!(true));
        assert!(d.get("restricted_to_uuid").is_none());
    }

    #[test]
    fn dsapi_type_folds_v2_types() {
        let mut v = sample();
        assert_eq!(parse(&v).dsapi_type(), "zone-dataset");
        v["type"] = json!("zvol");
        assert_eq!(parse(&v).dsapi_type(), "zvol");
        v["type"] = json!("lx-dataset");
        assert_eq!(parse(&v).dsapi_type(), "zone-dataset");
    }
}
