//! Enums of named values, each value with one name.

/// Declares an enum whose values each have one name, the one the spec, the labels, the JSON and
/// serde all use: `ALL` (every value, in declaration order), `as_str`, `Display`, and `FromStr`,
/// whose error gives the accepted names from `ALL`, so that a message cannot drift from the
/// enum. `$what` names the kind of value in that error, with its article: `"a sampler"`.
/// Derives beyond `Clone, Copy, Debug, PartialEq, Eq, Hash` and serde's (`Default`, `Ord`) go
/// in the attributes.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$(Self::$variant),+];

            /// The value's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("`{s}` is not {} ({})", $what, names.join(", "))
                })
            }
        }
    };
}

pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    string_enum!(
        /// A test enum.
        pub enum Fruit("a fruit") {
            Apple = "apple",
            BloodOrange = "blood-orange",
        }
    );

    #[test]
    fn names_parse_print_and_serialise_alike_and_refusals_list_them() {
        for fruit in Fruit::ALL {
            assert_eq!(fruit.as_str().parse::<Fruit>(), Ok(fruit));
            assert_eq!(
                serde_json::to_string(&fruit).unwrap(),
                format!("\"{fruit}\"")
            );
        }
        assert_eq!(
            "pear".parse::<Fruit>(),
            Err("`pear` is not a fruit (apple, blood-orange)".to_owned())
        );
    }
}
